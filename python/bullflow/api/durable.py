"""Routes of durable step workflows (``bullflow.durable``): create instances of the workflow
classes this process imported (``bullflow serve --durable-module``), list and read instances,
pause, resume, terminate, restart them and send them events."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query

from ..durable.client import InstanceStatus, WorkflowInstance
from ..durable.entrypoint import WorkflowEntrypoint
from .models import CreateInstanceRequest, SendEventRequest, iso_ms
from .state import ApiState, StateDep

__all__ = ["router"]

router = APIRouter(prefix="/durable", tags=["durable"])

InstanceState = Literal[
    "queued", "running", "waiting", "waitingForPause", "paused", "complete", "errored", "terminated"
]
_MAX_SCANS = 20
_FIELDS = ("status", "workflow", "created_at", "updated_at", "finished_at", "step_count")


def _status_json(instance_id: str, status: InstanceStatus) -> dict[str, Any]:
    return {
        "id": instance_id,
        "workflow": status.workflow,
        "status": status.status,
        "output": status.output,
        "error": status.error,
        "createdAt": iso_ms(status.created_at),
        "updatedAt": iso_ms(status.updated_at),
        "finishedAt": iso_ms(status.finished_at),
        "stepCount": status.step_count,
    }


@router.get("/workflows", summary="The durable workflow classes this API can create instances of")
async def durable_workflows(state: StateDep) -> dict[str, Any]:
    classes: dict[str, type[WorkflowEntrypoint]] = state.durable.classes
    return {"workflows": [{"name": name, "version": cls.version} for name, cls in sorted(classes.items())]}


@router.post("/{workflow}/instances", status_code=201, summary="Create an instance")
async def create_instance(
    state: StateDep,
    workflow: str,
    body: Annotated[CreateInstanceRequest | None, Body()] = None,
) -> dict[str, Any]:
    """404 for a workflow class this process does not know, 409 when the id is taken."""
    request = body or CreateInstanceRequest()
    instance = await state.durable.workflow(workflow).create(params=request.params, id=request.id)
    return _status_json(instance.id, await instance.status())


@router.get("/instances", summary="List instances")
async def list_instances(
    state: StateDep,
    status: Annotated[InstanceState | None, Query()] = None,
    workflow: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(pattern=r"^\d{1,20}$")] = None,
) -> dict[str, Any]:
    """Instances in Redis, filtered, in no particular order (a SCAN of the instance keys): a page
    ends once it holds at least ``limit`` instances (it may hold a few more) or after looking at
    about 10,000 keys; ``nextCursor`` continues, null at the end."""
    store = state.durable.store
    redis: Any = store.redis
    prefix = f"{store.settings.prefix}:wf:{{"
    position = int(cursor or 0)
    found: list[dict[str, Any]] = []
    for _ in range(_MAX_SCANS):
        position, batch = await redis.scan(position, match=f"{prefix}*", count=500, _type="hash")
        ids = [k.decode()[len(prefix) : -1] for k in batch if k.endswith(b"}")]
        if ids:
            pipe = redis.pipeline(transaction=False)
            for instance_id in ids:
                pipe.hmget(store.keys(instance_id).instance, list(_FIELDS))
            for instance_id, fields in zip(ids, await pipe.execute(), strict=True):
                if fields[0] is None:
                    continue
                row = {
                    "id": instance_id,
                    "status": fields[0].decode(),
                    "workflow": fields[1].decode() if fields[1] is not None else None,
                    "createdAt": iso_ms(int(fields[2])) if fields[2] else None,
                    "updatedAt": iso_ms(int(fields[3])) if fields[3] else None,
                    "finishedAt": iso_ms(int(fields[4])) if fields[4] else None,
                    "stepCount": int(fields[5] or 0),
                }
                if (status is None or row["status"] == status) and (
                    workflow is None or row["workflow"] == workflow
                ):
                    found.append(row)
        if position == 0 or len(found) >= limit:
            break
    return {"instances": found, "nextCursor": str(position) if position else None}


async def _instance(state: ApiState, instance_id: str) -> WorkflowInstance:
    return await state.durable.instance(instance_id)


@router.get("/instances/{instance_id}", summary="An instance's status, output and error")
async def get_instance(instance_id: str, state: StateDep) -> dict[str, Any]:
    instance = await _instance(state, instance_id)
    return _status_json(instance_id, await instance.status())


@router.post("/instances/{instance_id}/pause", summary="Pause an instance")
async def pause_instance(instance_id: str, state: StateDep) -> dict[str, Any]:
    status = await (await _instance(state, instance_id)).pause()
    return {"id": instance_id, "status": status}


@router.post("/instances/{instance_id}/resume", summary="Resume a paused instance")
async def resume_instance(instance_id: str, state: StateDep) -> dict[str, Any]:
    status = await (await _instance(state, instance_id)).resume()
    return {"id": instance_id, "status": status}


@router.post("/instances/{instance_id}/terminate", summary="Terminate an instance")
async def terminate_instance(instance_id: str, state: StateDep) -> dict[str, Any]:
    instance = await _instance(state, instance_id)
    await instance.terminate()
    return {"id": instance_id, "status": (await instance.status()).status}


@router.post("/instances/{instance_id}/restart", summary="Run an instance again from the top")
async def restart_instance(instance_id: str, state: StateDep) -> dict[str, Any]:
    instance = await _instance(state, instance_id)
    await instance.restart()
    return {"id": instance_id, "status": (await instance.status()).status}


@router.post("/instances/{instance_id}/events", summary="Send an event to an instance")
async def send_event(state: StateDep, instance_id: str, request: SendEventRequest) -> dict[str, Any]:
    """``delivered`` is true when a waiting step took the event (else it is buffered)."""
    delivered = await (await _instance(state, instance_id)).send_event(request.type, request.payload)
    return {"id": instance_id, "type": request.type, "delivered": delivered}


@router.get("/instances/{instance_id}/logs", summary="An instance's log, oldest first")
async def instance_logs(
    state: StateDep,
    instance_id: str,
    count: Annotated[int | None, Query(ge=1, le=10_000, description="only the newest entries")] = None,
) -> dict[str, Any]:
    entries = await (await _instance(state, instance_id)).logs(count)
    return {
        "logs": [
            {
                "id": e.id,
                "event": e.event,
                "timestamp": iso_ms(e.timestamp),
                "step": e.step,
                "detail": e.detail,
            }
            for e in entries
        ]
    }
