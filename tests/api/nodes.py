"""Node implementations the API tests' workers run."""

from __future__ import annotations

import asyncio
from typing import Any

from bullflow import NodeContext


async def echo(ctx: NodeContext) -> Any:
    """``params.value`` if set, else ``"<id>(<input>)"``."""
    if "value" in ctx.params:
        return ctx.params["value"]
    return f"{ctx.node_id}({ctx.input})"


async def add(ctx: NodeContext) -> Any:
    """``context.a + context.b``."""
    return int(await ctx.get("a") or 0) + int(await ctx.get("b") or 0)


async def slow(ctx: NodeContext) -> Any:
    """Sleeps ``params.seconds``; stops early when the run is cancelled."""
    try:
        await asyncio.wait_for(ctx.signal.wait(), float(ctx.params.get("seconds", 1)))
    except asyncio.TimeoutError:
        return "slept"
    ctx.signal.raise_if_cancelled()
    return "cancelled"


async def boom(ctx: NodeContext) -> Any:
    raise RuntimeError(str(ctx.params.get("message", "boom")))


REGISTRY: dict[str, Any] = {"echo": echo, "add": add, "slow": slow, "boom": boom}
