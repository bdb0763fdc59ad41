"""How errors become HTTP responses: the library's typed errors map to status codes with their
message as ``detail``; blueprint errors are 422 in FastAPI's validation format (``loc`` is the
JSON path of the problem inside the body); Redis being unreachable is a 503 that names nothing
about the server."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..exceptions import (
    BlueprintError,
    BullflowError,
    CodecError,
    InstanceExistsError,
    InstanceNotFoundError,
    InstanceStatusError,
    PayloadTooLargeError,
    ResumeError,
    StepConfigError,
)
from ..registry import BlueprintNotFoundError

__all__ = ["ApiError", "blueprint_error_detail", "install_error_handlers", "path_to_loc"]

logger = logging.getLogger(__name__)

_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (BlueprintNotFoundError, 404),
    (InstanceNotFoundError, 404),
    (InstanceExistsError, 409),
    (InstanceStatusError, 409),
    (ResumeError, 409),
    (PayloadTooLargeError, 413),
    (StepConfigError, 422),
    (CodecError, 422),
)
_SEGMENT = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


class ApiError(Exception):
    """A response with ``status`` and a JSON body (``{"detail": ...}`` plus ``extra``)."""

    def __init__(self, status: int, detail: Any, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.extra = extra


def path_to_loc(path: str) -> list[str | int]:
    """``nodes[3].config.maxRetries`` -> ``["nodes", 3, "config", "maxRetries"]``."""
    return [int(index) if index else name for name, index in _SEGMENT.findall(path)]


def blueprint_error_detail(err: BlueprintError, body: Any = None, *, root: str = "body") -> dict[str, Any]:
    """One FastAPI-style validation error for a blueprint error; with the request ``body``, the
    id of the node (``nodeId``) or the edge (``edge``: ``source -> target``) it concerns."""
    loc = path_to_loc(err.path)
    item: dict[str, Any] = {
        "type": "blueprint",
        "loc": [root, *loc],
        "msg": err.problem,
        "path": err.path,
    }
    if len(loc) >= 2 and isinstance(loc[1], int) and isinstance(body, Mapping):
        items = body.get(str(loc[0]))
        entry = items[loc[1]] if isinstance(items, list) and loc[1] < len(items) else None
        if isinstance(entry, Mapping):
            if loc[0] == "nodes" and isinstance(entry.get("id"), str):
                item["nodeId"] = entry["id"]
            elif loc[0] == "edges":
                item["edge"] = f"{entry.get('source')} -> {entry.get('target')}"
    return item


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail, **exc.extra}, status_code=exc.status)

    @app.exception_handler(BlueprintError)
    async def blueprint_error(request: Request, exc: BlueprintError) -> JSONResponse:
        return JSONResponse({"detail": [blueprint_error_detail(exc)]}, status_code=422)

    @app.exception_handler(BullflowError)
    async def bullflow_error(request: Request, exc: BullflowError) -> JSONResponse:
        for kind, status in _STATUS:
            if isinstance(exc, kind):
                return JSONResponse({"detail": str(exc)}, status_code=status)
        logger.error("%s %s failed: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": str(exc)}, status_code=500)

    async def redis_unavailable(request: Request, exc: Exception) -> JSONResponse:
        logger.error("%s %s: Redis unavailable: %s", request.method, request.url.path, type(exc).__name__)
        return JSONResponse({"detail": "the store is unavailable; try again"}, status_code=503)

    app.add_exception_handler(RedisConnectionError, redis_unavailable)
    app.add_exception_handler(RedisTimeoutError, redis_unavailable)
