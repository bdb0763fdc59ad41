"""What a durable workflow is: a :class:`WorkflowEntrypoint` subclass whose ``run(event, step)``
is replayed from the top on every activation; and the registry that maps the workflow names
stored with instances to those classes."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from .step import WorkflowStep

__all__ = ["Event", "WorkflowEntrypoint", "WorkflowEvent", "registered_workflows", "workflow_name"]

logger = logging.getLogger(__name__)

_REGISTRY: dict[str, type[WorkflowEntrypoint]] = {}


@dataclass(frozen=True, slots=True)
class WorkflowEvent:
    """What ``run`` is given: the instance's params (``payload``), its id and its creation time."""

    payload: Any
    instance_id: str
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class Event:
    """An event delivered to ``step.wait_for_event``: its type, payload and when it was sent."""

    type: str
    payload: Any
    timestamp: datetime


class WorkflowEntrypoint:
    """Base class of durable workflows.

    Subclasses implement ``async def run(self, event, step)``; what it returns is the instance's
    output. Side effects belong in steps (``await step.do(name, fn)``): ``run`` is executed again
    from the top after every wake-up and must reach the same steps in the same order, building
    its state only from what steps return.

    ``name`` (default: the class name) is what instances store to find the class again;
    ``version`` is stored with each instance. Every subclass registers itself under its name.
    ``self.env`` and ``self.ctx`` are what the worker was created with.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"

    def __init__(self, ctx: Any = None, env: Any = None) -> None:
        self.ctx = ctx
        self.env = env

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        key = workflow_name(cls)
        previous = _REGISTRY.get(key)
        if previous is not None and previous is not cls:
            logger.debug("workflow name %r now refers to %s.%s", key, cls.__module__, cls.__qualname__)
        _REGISTRY[key] = cls

    async def run(self, event: WorkflowEvent, step: WorkflowStep) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.run is not implemented")


def workflow_name(cls: type[WorkflowEntrypoint]) -> str:
    """The name instances of ``cls`` are stored under."""
    return cls.__dict__.get("name") or cls.__name__


def registered_workflows() -> dict[str, type[WorkflowEntrypoint]]:
    """Every workflow class defined so far, by name."""
    return dict(_REGISTRY)


def event_from_json(value: Any) -> Event:
    """The :class:`Event` of a stored ``{type, payload, timestamp}`` object."""
    return Event(
        type=str(value.get("type", "")),
        payload=value.get("payload"),
        timestamp=datetime.fromtimestamp(int(value.get("timestamp", 0)) / 1000, tz=timezone.utc),
    )
