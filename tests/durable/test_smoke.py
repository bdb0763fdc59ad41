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


async def test_an_instance_is_created_and_runs_after_the_server_lost_its_lua(
    start_workers: Any, workflow: Any, redis_client: Any
) -> None:
    """createInstance goes in one round trip with the instance's index entry; when the server
    lost the function library (a restart) the library is loaded and the instance created once."""
    await start_workers(workflows=[ThreeSteps])
    client = workflow(ThreeSteps)
    await redis_client.execute_command("FUNCTION", "FLUSH")
    await redis_client.script_flush()
    instance = await client.create(params={"x": 1})
    assert await instance.result(timeout=10) == 3
    events = [e.event for e in await instance.logs()]
    assert events.count("WORKFLOW_QUEUED") == 1
    assert events[-1] == "WORKFLOW_SUCCESS"
