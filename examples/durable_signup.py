"""A durable step workflow: a sign-up that creates an account, waits for the e-mail to be
verified (an event), sleeps, and sends a welcome mail. Run it with workers in this process:

    python -m examples.durable_signup --redis-url redis://127.0.0.1:6379/0

or serve it from worker processes with ``bullflow durable-worker examples.durable_signup`` and
create instances with ``Workflow(Signup, url)`` from anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from bullflow.durable import (
    RetryConfig,
    WaitTimeoutError,
    Workflow,
    WorkflowEntrypoint,
    WorkflowEvent,
    WorkflowStep,
    create_workflow_workers,
)
from bullflow.settings import DurableSettings


class Signup(WorkflowEntrypoint):
    async def run(self, event: WorkflowEvent, step: WorkflowStep) -> Any:
        email = event.payload["email"]

        async def create_account() -> dict[str, Any]:
            return {"user": f"u-{sum(map(ord, email)) % 10_000}", "email": email}

        account = await step.do("create account", create_account, retries=RetryConfig(limit=3, delay=1))
        try:
            verified = await step.wait_for_event("email verified", type="verified", timeout="1 hour")
        except WaitTimeoutError:
            return {"account": account, "status": "unverified"}
        await step.sleep("cool-off", 0.5)

        async def send_welcome() -> str:
            return f"welcome mail to {email}"

        sent = await step.do("send welcome", send_welcome)
        return {"account": account, "verified_at": verified.payload["at"], "sent": sent}


async def main(url: str, prefix: str) -> dict[str, Any]:
    settings = DurableSettings(prefix=prefix, queue_name=f"{prefix}-signup")
    workers = await create_workflow_workers(url, workflows=[Signup], settings=settings, concurrency=5)
    try:
        async with Workflow(Signup, url, settings=settings) as signups:
            instance = await signups.create(params={"email": "ada@example.com"})
            while (await instance.status()).status != "waiting":
                await asyncio.sleep(0.05)
            await instance.send_event("verified", {"at": "2026-11-22T10:00:00Z"})
            result = await instance.result(timeout=30)
            steps = [entry.event for entry in await instance.logs()]
            return {"instance": instance.id, "result": result, "log": steps}
    finally:
        await workers.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--prefix", default="bullflow-example")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.redis_url, args.prefix)), indent=2))
