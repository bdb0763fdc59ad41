"""The result of a run: its status, its final context and the errors of the nodes that failed."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

import orjson

__all__ = ["RunStatus", "WorkflowError", "WorkflowResult", "serialize_context"]

logger = logging.getLogger(__name__)

RunStatus = Literal["completed", "failed", "cancelled", "awaiting"]

CIRCULAR_CONTEXT = '{"_circularReference":true,"message":"Context contains circular references"}'


@dataclass(frozen=True, slots=True)
class WorkflowError:
    """One failure in a run. ``message`` is what users see (``Node 'X' execution failed``);
    ``error`` is the exception (its ``__cause__`` is what the node raised)."""

    message: str
    node_id: str | None
    error: BaseException | None = None
    timestamp: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())

    @property
    def cause(self) -> BaseException | None:
        return self.error.__cause__ if self.error is not None else None

    def to_dict(self) -> dict[str, Any]:
        cause = self.cause
        return {
            "message": self.message,
            "nodeId": self.node_id,
            "timestamp": self.timestamp,
            "cause": None if cause is None else f"{type(cause).__name__}: {cause}",
        }


@dataclass(slots=True)
class WorkflowResult:
    status: RunStatus
    context: dict[str, Any]
    errors: list[WorkflowError] = field(default_factory=list)
    run_id: str = ""
    blueprint_id: str = ""
    skipped_node_ids: list[str] = field(default_factory=list)
    _serialized: str | None = field(default=None, repr=False)

    @property
    def serialized_context(self) -> str:
        """The context as JSON (computed once). Values JSON cannot hold are written with ``str()``;
        a circular context gives Flowcraft's ``_circularReference`` marker."""
        if self._serialized is None:
            self._serialized = serialize_context(self.context)
        return self._serialized

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "runId": self.run_id,
            "blueprintId": self.blueprint_id,
            "context": orjson.loads(self.serialized_context),
            "errors": [e.to_dict() for e in self.errors],
        }


def _default(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def serialize_context(context: dict[str, Any]) -> str:
    try:
        return orjson.dumps(context, default=_default, option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError) as err:
        logger.warning("context cannot be serialised: %s", err)
        return CIRCULAR_CONTEXT
