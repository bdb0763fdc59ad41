"""Run events (Flowcraft's ``FlowcraftEvent`` names and payloads) and the in-memory event logger.

An event bus is any object with an ``emit(event)`` method, sync or async. The runtime builds
events only when a bus is configured, so runs without one pay nothing for them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = ["EVENT_TYPES", "EventBus", "FlowEvent", "InMemoryEventLogger"]

EVENT_TYPES = frozenset(
    {
        "workflow:start",
        "workflow:resume",
        "workflow:pause",
        "workflow:stall",
        "workflow:finish",
        "node:start",
        "node:finish",
        "node:error",
        "node:fallback",
        "node:retry",
        "node:skipped",
        "edge:evaluate",
        "context:change",
        "batch:start",
        "batch:finish",
    }
)


@dataclass(frozen=True, slots=True)
class FlowEvent:
    type: str
    payload: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class EventBus(Protocol):
    def emit(self, event: FlowEvent) -> Any: ...


class InMemoryEventLogger:
    """Records every event; handy in tests and for ``to_mermaid_for_run``."""

    def __init__(self) -> None:
        self.events: list[FlowEvent] = []

    def emit(self, event: FlowEvent) -> None:
        self.events.append(event)

    def find(self, type: str, predicate: Callable[[FlowEvent], bool] | None = None) -> FlowEvent | None:
        for event in self.events:
            if event.type == type and (predicate is None or predicate(event)):
                return event
        return None

    def filter(self, type: str) -> list[FlowEvent]:
        return [e for e in self.events if e.type == type]

    def types(self) -> list[str]:
        return [e.type for e in self.events]

    def clear(self) -> None:
        self.events.clear()


async def emit(bus: EventBus, event: FlowEvent) -> None:
    result = bus.emit(event)
    if inspect.isawaitable(result):
        await result
