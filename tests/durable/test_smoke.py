"""The basics: create, run, result, status, log."""

from __future__ import annotations

from typing import Any

from .workflows import ThreeSteps


async def test_three_steps_complete(start_workers: Any, workflow: Any) -> None:
    await start_workers(workflows=[ThreeSteps])
    client = workflow(ThreeSteps)
    instance = await client.create(params={"x": 1})
    assert await instance.result(timeout=10) == 3
    status = await instance.status()
    assert status.status == "complete"
    assert status.output == 3
    assert status.step_count == 3
    events = [e.event for e in await instance.logs()]
    assert events[0] == "WORKFLOW_QUEUED"
    assert events.count("STEP_SUCCESS") == 3
    assert events[-1] == "WORKFLOW_SUCCESS"
