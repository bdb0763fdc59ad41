"""Node middleware (Flowcraft's ``beforeNode`` / ``afterNode`` / ``aroundNode`` hooks).

A middleware is any object with some of these methods (sync or async):

* ``before_node(ctx, node_id)`` -- before the node's first attempt;
* ``after_node(ctx, node_id, result, error)`` -- after it, also when it failed;
* ``around_node(ctx, node_id, next)`` -- wraps the node: ``await next()`` runs it (and returns its
  result or raises its error). Returning a value without calling ``next`` short-circuits the node
  with that value. The first middleware is the outermost.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .nodes import NodeContext

__all__ = ["Middleware", "build_chain"]


class Middleware(Protocol):
    """Marker protocol: implement any subset of before_node, after_node and around_node."""


async def _maybe(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


async def build_chain(
    middleware: Sequence[Any],
    ctx: NodeContext,
    node_id: str,
    core: Callable[[], Awaitable[Any]],
) -> Any:
    """Run ``core`` (the node with its retries) inside the middleware."""

    async def core_with_hooks() -> Any:
        result: Any = None
        error: BaseException | None = None
        try:
            for m in middleware:
                hook = getattr(m, "before_node", None)
                if hook is not None:
                    await _maybe(hook(ctx, node_id))
            result = await core()
            return result
        except BaseException as exc:
            error = exc
            raise
        finally:
            for m in middleware:
                hook = getattr(m, "after_node", None)
                if hook is not None:
                    await _maybe(hook(ctx, node_id, result, error))

    chain: Callable[[], Awaitable[Any]] = core_with_hooks
    for m in reversed(middleware):
        around = getattr(m, "around_node", None)
        if around is not None:
            chain = _wrap(around, chain, ctx, node_id)
    return await chain()


def _wrap(
    around: Callable[..., Any], inner: Callable[[], Awaitable[Any]], ctx: NodeContext, node_id: str
) -> Callable[[], Awaitable[Any]]:
    async def step() -> Any:
        called = False
        inner_result: Any = None

        async def next_() -> Any:
            nonlocal called, inner_result
            called = True
            inner_result = await inner()
            return inner_result

        value = await _maybe(around(ctx, node_id, next_))
        if value is None:
            if not called:
                raise RuntimeError("Middleware did not call next() and did not return a result")
            return inner_result
        return value

    return step
