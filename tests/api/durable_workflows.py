"""Durable workflows the API tests start through ``/durable`` (imported by the app as a
``durable_modules`` entry, and run by in-process workers)."""

from __future__ import annotations

from typing import Any

from bullflow.durable import WorkflowEntrypoint, WorkflowEvent, WorkflowStep


class ApiApproval(WorkflowEntrypoint):
    """Computes a total, waits for an ``approve`` event, returns both."""

    async def run(self, event: WorkflowEvent, step: WorkflowStep) -> Any:
        params = event.payload or {}

        async def total() -> int:
            return sum(int(x) for x in params.get("items", []))

        amount = await step.do("total", total)
        approval = await step.wait_for_event("approval", type="approve", timeout="1 minute")
        return {"total": amount, "approvedBy": approval.payload}
