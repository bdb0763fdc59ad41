"""Operational routes: health, readiness, Prometheus metrics, queues and workers."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any, cast

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse
from redis.exceptions import RedisError

from .. import tracking
from ..fleet import live_workers
from .metrics import QueueDepth, queue_depths, render_metrics
from .models import iso_ms
from .state import ApiState, StateDep

__all__ = ["live_workers_json", "router"]

logger = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


@router.get("/healthz", summary="The process is up (no token needed)")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Redis is reachable and the scripts are loaded (no token needed)")
async def readyz(state: StateDep) -> JSONResponse:
    try:
        await cast("Any", state.redis.ping())
        await state.scripts.load()
    except (RedisError, OSError) as err:
        logger.warning("not ready: Redis: %s", type(err).__name__)
        return JSONResponse({"status": "unavailable"}, status_code=503)
    return JSONResponse({"status": "ready"})


async def live_workers_json(state: ApiState) -> list[dict[str, Any]]:
    return [worker.to_json() for worker in await live_workers(state.redis)]


async def _depths(state: ApiState) -> list[QueueDepth]:
    settings = state.settings
    queues = [(name, settings.queue_prefix) for name in settings.queues]
    queues.append((settings.durable.queue_name, settings.durable.queue_prefix))
    return await queue_depths(state.redis, queues)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {PROMETHEUS_TEXT: {}}}},
)
async def metrics(state: StateDep) -> PlainTextResponse:
    snapshot = await tracking.read_metrics(state.redis)
    workers = Counter(str(w["kind"]) for w in await live_workers_json(state))
    text = render_metrics(snapshot, await _depths(state), workers)
    return PlainTextResponse(text, media_type=PROMETHEUS_TEXT)


@router.get("/queues", summary="Queue depths and node throughput per minute")
async def queues(state: StateDep) -> dict[str, Any]:
    snapshot = await tracking.read_metrics(state.redis)
    return {
        "queues": [depth.to_json() for depth in await _depths(state)],
        "throughput": [{"minute": iso_ms(minute), "nodes": count} for minute, count in snapshot.per_minute],
    }


@router.get("/workers", summary="Live worker processes")
async def workers(state: StateDep) -> dict[str, Any]:
    return {"workers": await live_workers_json(state)}
