"""Node implementations and blueprints the distributed tests run in worker processes
(``tests.integration.nodes:REGISTRY``, ``tests.integration.nodes:BLUEPRINTS``)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from bullflow import NodeContext, NodeResult


async def echo(ctx: NodeContext) -> Any:
    """Returns ``params.value`` if set, else ``"<id>(<input>)"``."""
    if "value" in ctx.params:
        return ctx.params["value"]
    return f"{ctx.node_id}({ctx.input})"


async def route(ctx: NodeContext) -> NodeResult:
    """Takes the action ``params.action`` (or the context key ``params.actionKey``)."""
    action = ctx.params.get("action")
    if "actionKey" in ctx.params:
        action = await ctx.get(str(ctx.params["actionKey"]))
    return NodeResult(output={"routed": action, "total": ctx.params.get("total", 0)}, action=action)


async def setter(ctx: NodeContext) -> Any:
    """Writes ``params.values`` into the context."""
    for key, value in (ctx.params.get("values") or {}).items():
        await ctx.set(key, value)
    return ctx.params.get("result", "set")


async def increment(ctx: NodeContext) -> Any:
    """``counter`` += 1 (a loop body)."""
    value = (await ctx.get("counter") or 0) + 1
    await ctx.set("counter", value)
    return value


async def nothing(ctx: NodeContext) -> None:
    """Returns no output (Flowcraft stored '' for it: defect 7.2-A)."""
    return None


async def boom(ctx: NodeContext) -> Any:
    raise RuntimeError(str(ctx.params.get("message", "boom")))


async def flaky(ctx: NodeContext) -> Any:
    """Fails until attempt ``params.succeedOn``; records each attempt in a file
    (``params.log``) so the test sees every attempt, across processes."""
    log = Path(str(ctx.params["log"]))
    with log.open("a") as handle:
        handle.write(f"{ctx.attempt} {time.time()}\n")
    if ctx.attempt < int(ctx.params.get("succeedOn", 2)):
        raise RuntimeError(f"attempt {ctx.attempt} fails")
    return f"ok on attempt {ctx.attempt}"


async def slow(ctx: NodeContext) -> Any:
    """Sleeps ``params.seconds`` (cooperatively cancellable); appends its id to ``params.log``."""
    seconds = float(ctx.params.get("seconds", 1))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ctx.signal.raise_if_cancelled()
        await asyncio.sleep(0.02)
    if "log" in ctx.params:
        with Path(str(ctx.params["log"])).open("a") as handle:
            handle.write(f"{ctx.run_id} {ctx.node_id} {os.getpid()}\n")
    return f"{ctx.node_id} slept"


async def record(ctx: NodeContext) -> Any:
    """Appends ``<runId> <nodeId> <iteration marker>`` to ``params.log`` (exactly-once checks)."""
    with Path(str(ctx.params["log"])).open("a") as handle:
        handle.write(f"{ctx.run_id} {ctx.node_id}\n")
    return f"{ctx.node_id}:{ctx.input}"


def not_json(ctx: NodeContext) -> Any:
    return {1, 2, 3}


async def big(ctx: NodeContext) -> Any:
    return "x" * int(ctx.params.get("size", 1000))


def double(ctx: NodeContext) -> Any:
    return (ctx.input or 0) * 2


REGISTRY: dict[str, Any] = {
    "echo": echo,
    "route": route,
    "setter": setter,
    "increment": increment,
    "nothing": nothing,
    "boom": boom,
    "flaky": flaky,
    "slow": slow,
    "record": record,
    "not-json": not_json,
    "big": big,
    "double": double,
}
