"""Request bodies (pydantic models; camelCase on the wire) and small JSON helpers."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "CancelRequest",
    "CreateInstanceRequest",
    "ExecuteAsyncRequest",
    "ExecuteRequest",
    "ResumeRequest",
    "SendEventRequest",
    "iso_ms",
]

RUN_ID_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ExecuteAsyncRequest(_Body):
    input: dict[str, Any] = Field(default_factory=dict, description="the run's initial context")
    version: int | None = Field(default=None, ge=1, description="the blueprint version (default: newest)")
    run_id: str | None = Field(
        default=None,
        alias="runId",
        pattern=RUN_ID_PATTERN,
        description="the run id (default: a new UUID); starting a run id twice is a 409",
    )


class ExecuteRequest(ExecuteAsyncRequest):
    timeout: float | None = Field(
        default=None, gt=0, description="seconds to wait for the result (default 30, at most 300)"
    )


class CancelRequest(_Body):
    reason: str = Field(default="cancelled", max_length=1000)


class ResumeRequest(_Body):
    node_id: str | None = Field(default=None, alias="nodeId", description="the waiting node (default: any)")
    payload: Any = Field(default=None, description="the resumed node's output (default: its own)")
    action: str | None = Field(default=None, description="the action that chooses its outgoing edges")


class CreateInstanceRequest(_Body):
    params: Any = None
    id: str | None = Field(default=None, description="the instance id (default: generated)")


class SendEventRequest(_Body):
    type: str = Field(min_length=1, max_length=256)
    payload: Any = None


def iso_ms(value: int | float | datetime | None) -> str | None:
    """ISO-8601 UTC with milliseconds and a trailing Z (``2026-11-22T10:00:00.123Z``)."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.fromtimestamp(value / 1000, tz=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
