"""Durable workflow instances through the API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from bullflow.api import ApiSettings
from bullflow.durable import WorkflowWorkers

from .conftest import eventually, unique

pytestmark = pytest.mark.timeout(30)

MODULE = "tests.api.durable_workflows"


@pytest.fixture
async def durable_api(
    make_api: Callable[..., Awaitable[httpx.AsyncClient]], api_settings: ApiSettings, redis_server: str
) -> AsyncIterator[httpx.AsyncClient]:
    api = await make_api(durable_modules=(MODULE,))
    from .durable_workflows import ApiApproval

    workers = WorkflowWorkers(
        redis_server,
        workflows=[ApiApproval],
        settings=api_settings.durable,
        reconcile_interval=None,
        heartbeat_interval=0.1,
    )
    await workers.start()
    try:
        yield api
    finally:
        await workers.close(force=True)


async def status_of(api: httpx.AsyncClient, instance_id: str) -> dict[str, Any]:
    reply = await api.get(f"/durable/instances/{instance_id}")
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


async def test_an_instance_from_creation_to_its_output(
    durable_api: httpx.AsyncClient, key_prefix: str
) -> None:
    api = durable_api
    names = [w["name"] for w in (await api.get("/durable/workflows")).json()["workflows"]]
    assert "ApiApproval" in names
    instance_id = unique("order")
    created = await api.post(
        "/durable/ApiApproval/instances", json={"id": instance_id, "params": {"items": [1, 2]}}
    )
    assert created.status_code == 201, created.text
    assert created.json()["id"] == instance_id and created.json()["workflow"] == "ApiApproval"
    assert (await api.post("/durable/ApiApproval/instances", json={"id": instance_id})).status_code == 409

    async def waiting() -> bool:
        return (await status_of(api, instance_id))["status"] == "waiting"

    await eventually(waiting)
    sent = await api.post(
        f"/durable/instances/{instance_id}/events", json={"type": "approve", "payload": "ada"}
    )
    assert sent.status_code == 200 and sent.json()["delivered"] is True

    async def complete() -> dict[str, Any] | None:
        status = await status_of(api, instance_id)
        return status if status["status"] == "complete" else None

    final = await eventually(complete)
    assert final["output"] == {"total": 3, "approvedBy": "ada"}
    assert (
        final["createdAt"].endswith("Z") and final["finishedAt"] and final["stepCount"] == 1
    )  # step.do only
    logs = (await api.get(f"/durable/instances/{instance_id}/logs")).json()["logs"]
    events = [entry["event"] for entry in logs]
    assert events[0] == "WORKFLOW_QUEUED" and "STEP_SUCCESS" in events
    assert (
        len((await api.get(f"/durable/instances/{instance_id}/logs", params={"count": 2})).json()["logs"])
        == 2
    )

    listed = (
        await api.get("/durable/instances", params={"status": "complete", "workflow": "ApiApproval"})
    ).json()
    assert instance_id in [row["id"] for row in listed["instances"]]
    assert all(row["status"] == "complete" for row in listed["instances"])
    finished = await api.post(f"/durable/instances/{instance_id}/terminate")
    assert finished.status_code == 409


async def test_pause_resume_terminate_restart(durable_api: httpx.AsyncClient) -> None:
    api = durable_api
    instance_id = (await api.post("/durable/ApiApproval/instances", json={"params": {"items": [5]}})).json()[
        "id"
    ]

    async def waiting() -> bool:
        return (await status_of(api, instance_id))["status"] == "waiting"

    await eventually(waiting)
    paused = await api.post(f"/durable/instances/{instance_id}/pause")
    assert paused.json() == {"id": instance_id, "status": "paused"}
    resumed = await api.post(f"/durable/instances/{instance_id}/resume")
    assert resumed.status_code == 200 and resumed.json()["status"] != "paused"
    terminated = await api.post(f"/durable/instances/{instance_id}/terminate")
    assert terminated.json() == {"id": instance_id, "status": "terminated"}
    assert (
        await api.post(f"/durable/instances/{instance_id}/events", json={"type": "approve"})
    ).status_code == 409
    restarted = await api.post(f"/durable/instances/{instance_id}/restart")
    assert restarted.status_code == 200
    await eventually(waiting)


async def test_unknown_workflows_and_instances_are_404(durable_api: httpx.AsyncClient) -> None:
    api = durable_api
    unknown = await api.post("/durable/NoSuchWorkflow/instances", json={})
    assert unknown.status_code == 404 and "NoSuchWorkflow" in unknown.json()["detail"]
    ghost = unique("ghost")
    assert (await api.get(f"/durable/instances/{ghost}")).status_code == 404
    for action in ("pause", "resume", "terminate", "restart"):
        assert (await api.post(f"/durable/instances/{ghost}/{action}")).status_code == 404
    assert (await api.post(f"/durable/instances/{ghost}/events", json={"type": "x"})).status_code == 404
    assert (await api.get(f"/durable/instances/{ghost}/logs")).status_code == 404
    bad_id = await api.post("/durable/ApiApproval/instances", json={"id": "-bad id-"})
    assert bad_id.status_code == 422
