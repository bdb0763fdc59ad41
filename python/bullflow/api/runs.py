"""Routes of runs: list, status view, pinned blueprint, node details, cancel, resume, and the
live event stream (server-sent events)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Body, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse

from .. import keys, tracking
from ..exceptions import ResumeError
from ..scripts import ScriptCode
from .errors import ApiError
from .models import CancelRequest, ResumeRequest
from .state import ApiState, StateDep

__all__ = ["router", "run_events"]

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/workflows/runs", tags=["runs"])

FINAL_STATUSES = tracking.FINAL_RUN_STATUSES
RunStatus = Literal["running", "awaiting", "completed", "failed", "cancelled"]


def _unknown(run_id: str) -> ApiError:
    return ApiError(404, f"unknown run {run_id!r}")


@router.get("", summary="List runs, newest first")
async def list_runs(
    state: StateDep,
    status: Annotated[RunStatus | None, Query()] = None,
    blueprint_id: Annotated[str | None, Query(alias="blueprintId", max_length=200)] = None,
    q: Annotated[str | None, Query(max_length=200, description="search in run and blueprint ids")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    try:
        runs, next_cursor = await tracking.list_runs(
            state.redis, status=status, blueprint_id=blueprint_id, search=q, limit=limit, cursor=cursor
        )
    except ValueError as err:  # a cursor this API did not return
        raise RequestValidationError(
            [{"type": "value_error", "loc": ["query", "cursor"], "msg": str(err), "input": cursor}]
        ) from None
    return {"runs": [run.to_json() for run in runs], "nextCursor": next_cursor}


@router.get("/{run_id}/status", summary="A run's status, tasks and log")
async def run_status(
    state: StateDep,
    run_id: str,
    log_limit: Annotated[int, Query(ge=0, le=10_000, alias="logLimit")] = 1000,
) -> dict[str, Any]:
    view = await tracking.run_view(state.redis, run_id, log_limit=log_limit)
    if view is None:
        raise _unknown(run_id)
    return view.to_json()


@router.get("/{run_id}/blueprint", summary="The blueprint a run runs")
async def run_blueprint(run_id: str, state: StateDep) -> dict[str, Any]:
    blueprint = await tracking.run_blueprint(state.redis, run_id)
    if blueprint is None:
        raise _unknown(run_id)
    return blueprint


@router.get("/{run_id}/tasks/{node_id}", summary="One node of a run: input, output, error, timings")
async def run_task(run_id: str, node_id: str, state: StateDep) -> dict[str, Any]:
    detail = await tracking.node_detail(state.redis, run_id, node_id)
    if detail is None:
        raise ApiError(404, f"run {run_id!r} has no node {node_id!r}")
    return detail.to_json()


@router.post("/{run_id}/cancel", summary="Cancel a run")
async def cancel_run(
    state: StateDep,
    run_id: str,
    body: Annotated[CancelRequest | None, Body()] = None,
) -> dict[str, Any]:
    """``cancelled`` is false when the run had finished already."""
    request = body or CancelRequest()
    outcome = await state.client.store.cancel_run(run_id, request.reason)
    if outcome.code == ScriptCode.UNKNOWN_RUN:
        raise _unknown(run_id)
    view = await tracking.run_view(state.redis, run_id, log_limit=0)
    status = view.status if view is not None else outcome.status
    return {"runId": run_id, "cancelled": outcome.code == ScriptCode.STORED, "status": status}


@router.post("/{run_id}/resume", summary="Resume a node that waits")
async def resume_run(
    state: StateDep,
    run_id: str,
    body: Annotated[ResumeRequest | None, Body()] = None,
) -> dict[str, Any]:
    """The waiting node (``nodeId``, or the run's only waiting one) completes with ``payload``
    as its output (default: its own) and ``action`` choosing its edges. 409 when nothing waits."""
    request = body or ResumeRequest()
    if not await cast("Any", state.redis.exists(keys.run_key(run_id))):
        raise _unknown(run_id)
    options: dict[str, Any] = {"action": request.action}
    if "payload" in request.model_fields_set:
        options["output"] = request.payload
    try:
        resumed = await state.client.resume(run_id, request.node_id, **options)
    except ResumeError as err:
        raise ApiError(409, str(err)) from None
    view = await tracking.run_view(state.redis, run_id, log_limit=0)
    return {"runId": run_id, "nodeId": resumed, "status": view.status if view is not None else "running"}


@router.get(
    "/{run_id}/events",
    summary="Live status (server-sent events)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "`event: status` frames"}},
)
async def run_events(run_id: str, request: Request, state: StateDep) -> StreamingResponse:
    """``event: status`` with the run's status view (as ``/status``) now and whenever it changes;
    the stream ends after a final status (completed, failed, cancelled). A comment line is sent
    every 15 s while nothing changes, to keep proxies from closing the connection."""
    # the change stamp before the view: a change in between is sent again, never missed
    stamp = await cast("Any", state.redis.hget(keys.run_key(run_id), "lu"))
    view = await tracking.run_view(state.redis, run_id)
    if view is None:
        raise _unknown(run_id)
    return StreamingResponse(
        _events(state, request, run_id, view, stamp),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _data(view: tracking.RunView) -> str:
    return json.dumps(view.to_json(), separators=(",", ":"))


def _frame(data: str, stamp: str) -> str:
    return f"id: {stamp}\nevent: status\ndata: {data}\n\n"


# A node taking its job (queued -> running) changes no run field: while nothing else changes, the
# view is read again this often (s) and sent when it differs.
_RECHECK_SECONDS = 1.0


async def _events(
    state: ApiState, request: Request, run_id: str, first: tracking.RunView, last: bytes | None
) -> AsyncIterator[str]:
    settings = state.settings
    loop = asyncio.get_running_loop()
    run_key = keys.run_key(run_id)
    yield "retry: 2000\n\n"
    sent = _data(first)
    yield _frame(sent, (last or b"0").decode())
    if first.status in FINAL_STATUSES:
        return
    quiet_since = checked = loop.time()
    try:
        while True:
            await asyncio.sleep(settings.events_poll_interval)
            if await request.is_disconnected():
                logger.debug("events of run %s: the client went away", run_id)
                return
            stamp = await cast("Any", state.redis.hget(run_key, "lu"))
            if stamp is None:  # the run expired
                return
            if stamp == last and loop.time() - checked < _RECHECK_SECONDS:
                if loop.time() - quiet_since >= settings.events_heartbeat:
                    quiet_since = loop.time()
                    yield ": keep-alive\n\n"
                continue
            last, checked = stamp, loop.time()
            view = await tracking.run_view(state.redis, run_id)
            if view is None:
                return
            data = _data(view)
            if data == sent:
                continue
            sent, quiet_since = data, loop.time()
            yield _frame(data, stamp.decode())
            if view.status in FINAL_STATUSES:
                return
    except asyncio.CancelledError:
        logger.debug("events of run %s: the client went away", run_id)
        raise
