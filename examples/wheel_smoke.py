"""Run from a clean venv that has only the built wheel installed: imports bullflow (with its Rust
core) and runs a small workflow. Used by `make wheel-smoke`."""

from __future__ import annotations

import asyncio

import bullflow
from bullflow import Flow, FlowRuntime


async def main() -> None:
    assert bullflow.CORE_IMPL == "rust", bullflow.CORE_IMPL
    flow = (
        Flow("smoke")
        .node("a", lambda ctx: 20)
        .node("b", lambda ctx: ctx.input + 1)
        .node("c", lambda ctx: ctx.input * 2)
        .edge("a", "b")
        .edge("b", "c")
    )
    result = await flow.run(FlowRuntime())
    assert result.status == "completed", result.errors
    assert result.context["_outputs.c"] == 42, result.context
    analysis = bullflow.analyze_blueprint(flow.to_blueprint())
    assert analysis.start_node_ids == ["a"] and analysis.terminal_node_ids == ["c"]
    from bullflow.scripts import load_scripts

    assert "storeGraph" in load_scripts(), "the wheel must carry bullflow/lua/"
    from importlib.resources import files

    static = files("bullflow") / "api" / "static"
    for name in ("index.html", "app.js", "dag.js", "style.css"):
        assert (static / name).is_file(), f"the wheel must carry bullflow/api/static/{name}"
    print(f"wheel smoke ok: bullflow {bullflow.__version__}, core {bullflow.CORE_IMPL}")


if __name__ == "__main__":
    asyncio.run(main())
