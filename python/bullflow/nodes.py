"""What a node is: a function (``async def`` or plain ``def``) taking a :class:`NodeContext`, or a
class with Flowcraft's prep/exec/post/fallback/recover lifecycle (:class:`BaseNode`).

A function returns its output, or a :class:`NodeResult` to also choose an ``action`` (the edges
labelled with that action are taken).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .blueprint import NodeDefinition
from .cancellation import CancellationSignal
from .context import NodeContextView

if TYPE_CHECKING:
    from .runtime import FlowRuntime

__all__ = ["BaseNode", "NodeContext", "NodeFunction", "NodeImplementation", "NodeResult", "is_node_class"]

_node_logger = logging.getLogger("bullflow.node")


@dataclass(slots=True)
class NodeResult:
    """A node's result: ``output`` is stored as ``_outputs.<nodeId>``; ``action`` selects the
    outgoing edges labelled with it; ``dynamic_nodes`` (used by batch-scatter) adds nodes to the
    running workflow."""

    output: Any = None
    action: str | None = None
    dynamic_nodes: list[NodeDefinition] | None = None


class NodeContext:
    """Everything a node receives."""

    __slots__ = (
        "_logger",
        "_run",
        "attempt",
        "awaiting",
        "blueprint_id",
        "context",
        "definition",
        "input",
        "node_id",
        "params",
        "run_id",
        "runtime",
        "signal",
    )

    def __init__(self, context: NodeContextView, input: Any, definition: NodeDefinition, run: Any) -> None:
        self.context = context
        self.input = input
        self.definition = definition
        self.params = definition.params
        self.node_id = definition.id
        self.run_id: str = run.run_id
        self.blueprint_id: str = run.blueprint_id
        self.signal: CancellationSignal = run.signal
        self.runtime: FlowRuntime = run.runtime
        self.attempt = 1
        self.awaiting: dict[str, Any] | None = None
        self._run = run
        self._logger: logging.LoggerAdapter[logging.Logger] | None = None

    @property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]:
        """A logger whose records carry ``run_id`` and ``node_id``."""
        if self._logger is None:
            self._logger = logging.LoggerAdapter(
                _node_logger,
                {"run_id": self.run_id, "node_id": self.node_id, "blueprint_id": self.blueprint_id},
            )
        return self._logger

    @property
    def dependencies(self) -> dict[str, Any]:
        """The runtime's ``dependencies`` plus ``logger`` and ``runtime``."""
        return {**self.runtime.dependencies, "logger": self.logger, "runtime": self.runtime}

    async def get(self, key: str, default: Any = None) -> Any:
        return await self.context.get(key, default)

    async def set(self, key: str, value: Any) -> None:
        await self.context.set(key, value)

    async def has(self, key: str) -> bool:
        return await self.context.has(key)

    async def delete(self, key: str) -> bool:
        return await self.context.delete(key)

    def mark_awaiting(self, details: Mapping[str, Any] | None = None) -> None:
        """Pause the run at this node once it returns: the run ends ``awaiting`` and continues with
        ``runtime.resume(...)`` (human-in-the-loop, timers)."""
        self.awaiting = dict(details) if details else {"reason": "external_event"}


class BaseNode:
    """A class node. ``exec`` is retried up to ``config.maxRetries`` attempts; ``prep`` and ``post``
    run once. When every attempt fails, ``fallback(error, ctx)`` may return a replacement result
    (the default re-raises). ``recover(error, ctx)`` runs after any failure, for clean-up.
    Methods may be ``async`` or plain."""

    def __init__(self, params: Mapping[str, Any] | None = None, node_id: str | None = None) -> None:
        self.params = dict(params or {})
        self.node_id = node_id

    async def prep(self, ctx: NodeContext) -> Any:
        return ctx.input

    async def exec(self, prep_result: Any, ctx: NodeContext) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.exec is not implemented")

    async def post(self, exec_result: Any, ctx: NodeContext) -> Any:
        return exec_result

    async def fallback(self, error: BaseException, ctx: NodeContext) -> Any:
        raise error

    async def recover(self, error: BaseException, ctx: NodeContext) -> None:
        return None


NodeFunction = Callable[[NodeContext], Any | Awaitable[Any]]
NodeImplementation = NodeFunction | type[BaseNode]


def is_node_class(impl: Any) -> bool:
    """A class node is a class with an ``exec`` method (Flowcraft's ``isNodeClass``)."""
    return isinstance(impl, type) and callable(getattr(impl, "exec", None))
