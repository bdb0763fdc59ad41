"""Routes of registered blueprints: register, list, read, and start runs of them."""

from __future__ import annotations

import logging
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.asyncio import Redis

from .. import tracking
from .._impl import encode_value
from ..exceptions import BlueprintError
from ..fleet import live_workers
from ..registry import BlueprintRegistry
from ..scripts import ScriptCode
from .errors import ApiError, blueprint_error_detail
from .models import ExecuteAsyncRequest, ExecuteRequest, iso_ms
from .state import ApiState, StateDep

__all__ = ["advertised_uses", "router"]

logger = logging.getLogger(__name__)

router = APIRouter(tags=["workflows"])

_RESERVED_INPUT = ("blueprintId", "blueprintVersion")
_BLUEPRINT_EXAMPLE = {
    "id": "greet",
    "nodes": [{"id": "hello", "uses": "say-hello", "params": {"name": "Ada"}}],
    "edges": [],
}


async def advertised_uses(redis: Redis, queue: str) -> set[str]:
    """The ``uses`` keys the live flow workers of ``queue`` implement (``bullflow.fleet``)."""
    found: set[str] = set()
    for worker in await live_workers(redis):
        if worker.kind == "flow" and worker.queue == queue:
            found.update(worker.uses)
    return found


@router.post("/workflows", status_code=201, summary="Register a blueprint")
async def register_workflow(
    state: StateDep,
    blueprint: Annotated[dict[str, Any], Body(examples=[_BLUEPRINT_EXAMPLE])],
) -> JSONResponse:
    """Validate the blueprint (422 with the JSON path of the first problem) and store it as the
    next version of its id; the same content registered again returns the existing version
    (200). ``unimplemented`` lists the ``uses`` keys that no live worker of the queue
    implements: runs of the blueprint fail at those nodes until such a worker runs."""
    try:
        registration = await state.registry.register(blueprint)
    except BlueprintError as err:
        raise RequestValidationError([blueprint_error_detail(err, blueprint)]) from None
    have = await advertised_uses(state.redis, state.settings.queue)
    body = {
        "id": registration.id,
        "version": registration.version,
        "contentHash": registration.content_hash,
        "created": registration.created,
        "unimplemented": [u for u in registration.uses if u not in have],
        "warnings": list(registration.warnings),
    }
    return JSONResponse(body, status_code=201 if registration.created else 200)


@router.get("/workflows", summary="List registered blueprints (newest versions)")
async def list_workflows(state: StateDep) -> dict[str, Any]:
    return {
        "workflows": [
            {
                "id": entry.id,
                "version": entry.version,
                "contentHash": entry.content_hash,
                "registeredAt": iso_ms(entry.registered_at),
            }
            for entry in await state.registry.latest()
        ]
    }


@router.get("/workflows/{blueprint_id}", summary="A registered blueprint")
async def get_workflow(
    state: StateDep,
    blueprint_id: str,
    version: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    entry = await state.registry.get(blueprint_id, version)
    return {
        "id": entry.id,
        "version": entry.version,
        "versions": await state.registry.versions(blueprint_id),
        "contentHash": entry.content_hash,
        "registeredAt": iso_ms(entry.registered_at),
        "blueprint": entry.blueprint.to_dict(),
    }


async def start_run(state: ApiState, blueprint_id: str, request: ExecuteAsyncRequest) -> str:
    """Start a run of a registered version; returns its id."""
    registry: BlueprintRegistry = state.registry
    entry, compiled = await registry.compiled(blueprint_id, request.version)
    errors = [
        {
            "type": "reserved",
            "loc": ["body", "input", key],
            "msg": f"{key!r} is set by the server",
            "input": request.input[key],
        }
        for key in _RESERVED_INPUT
        if key in request.input
    ]
    if errors:
        raise RequestValidationError(errors)
    pairs = [(key, encode_value(value, key).decode()) for key, value in request.input.items()]
    pairs.append(("blueprintVersion", str(entry.version)))
    run_id = request.run_id or str(uuid.uuid4())
    client = state.client
    outcome = await client.store.start_run(run_id, compiled, pairs, client.run_options)
    if outcome.code == ScriptCode.ALREADY_PRESENT:
        raise ApiError(409, f"a run with id {run_id!r} exists already", runId=run_id)
    if outcome.code != ScriptCode.STORED:
        raise ApiError(500, f"could not start run {run_id!r}: startRun returned {outcome.code.name}")
    logger.info("started run %s of %r version %d", run_id, blueprint_id, entry.version)
    return run_id


@router.post("/workflows/{blueprint_id}/execute-async", status_code=202, summary="Start a run")
async def execute_async(
    state: StateDep,
    blueprint_id: str,
    body: Annotated[ExecuteAsyncRequest | None, Body()] = None,
) -> dict[str, Any]:
    """Start a run of the blueprint (its newest version unless ``version`` is given) and return
    its id at once; follow it with ``/workflows/runs/{runId}/status`` or ``.../events``."""
    request = body or ExecuteAsyncRequest()
    return {"runId": await start_run(state, blueprint_id, request)}


@router.post(
    "/workflows/{blueprint_id}/execute",
    summary="Run and wait for the result",
    responses={504: {"description": "the run did not finish in time; it goes on (`runId`)"}},
)
async def execute(
    state: StateDep,
    blueprint_id: str,
    body: Annotated[ExecuteRequest | None, Body()] = None,
) -> JSONResponse:
    """Start a run and wait for it to finish (or to wait for a resume) for up to ``timeout``
    seconds: the run's status view plus ``output``, its final context. After the timeout: 504
    with the ``runId`` (the run goes on)."""
    request = body or ExecuteRequest()
    settings = state.settings
    timeout = settings.execute_timeout if request.timeout is None else request.timeout
    if timeout > settings.max_execute_timeout:
        raise RequestValidationError(
            [
                {
                    "type": "less_than_equal",
                    "loc": ["body", "timeout"],
                    "msg": f"Input should be less than or equal to {settings.max_execute_timeout:g}",
                    "input": request.timeout,
                }
            ]
        )
    run_id = await start_run(state, blueprint_id, request)
    try:
        result = await state.client.wait_for(run_id, timeout)
    except TimeoutError:
        return JSONResponse(
            {"runId": run_id, "detail": f"the run did not finish within {timeout:g} s; it goes on"},
            status_code=504,
        )
    view = await tracking.run_view(state.redis, run_id)
    reply: dict[str, Any] = view.to_json() if view is not None else {"runId": run_id, "status": result.status}
    reply["output"] = result.context
    reply["errors"] = [{"nodeId": e.node_id, "message": e.message} for e in result.errors]
    return JSONResponse(reply)
