"""Built-in nodes: ``wait``, ``sleep``, ``subflow``, ``batch-scatter``, ``batch-gather`` and
``loop-controller``, plus the run-time wiring of the nodes a batch scatter creates."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from .blueprint import Blueprint, NodeDefinition, describe, load_blueprint
from .compile import CompiledNode
from .exceptions import ExpressionError, FatalNodeError, NodeError, SubflowError
from .expressions import compile_expression, is_truthy
from .nodes import NodeContext, NodeImplementation, NodeResult

if TYPE_CHECKING:
    from .execution import _Run

__all__ = ["BUILTIN_NODES", "parse_duration_ms"]

_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_duration_ms(value: Any) -> float:
    """A sleep duration: a number of milliseconds (>= 0) or ``"<n><ms|s|m|h|d>"``."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {describe(value)}")
    if isinstance(value, (int, float)):
        if value < 0 or value != value:
            raise ValueError(f"invalid duration {describe(value)}: must be >= 0")
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value.strip())
        if match:
            return float(int(match.group(1)) * _UNIT_MS[match.group(2)])
    raise ValueError(
        f"invalid duration {describe(value)}: use milliseconds or a string like '5s', '10m', '1h', '2d'"
    )


def wait_node(ctx: NodeContext) -> None:
    """Pause the run until ``runtime.resume(...)`` (human in the loop)."""
    ctx.mark_awaiting({"reason": "external_event"})


def sleep_node(ctx: NodeContext) -> Any:
    """Pause the run for ``params.duration``; its output is its input (passed through)."""
    try:
        ms = parse_duration_ms(ctx.params.get("duration"))
    except ValueError as err:
        raise NodeError(f"Sleep node '{ctx.node_id}': {err}") from err
    wake = datetime.now(timezone.utc) + timedelta(milliseconds=ms)
    ctx.mark_awaiting({"reason": "timer", "wakeUpAt": wake.isoformat().replace("+00:00", "Z")})
    return ctx.input


async def loop_controller_node(ctx: NodeContext) -> NodeResult:
    """Evaluate ``params.condition`` against the context: true -> action ``continue``,
    false -> action ``break``."""
    condition = ctx.params.get("condition")
    if not isinstance(condition, str):
        raise FatalNodeError(f"Loop controller '{ctx.node_id}' needs a string 'condition' parameter")
    try:
        value = await ctx.context.evaluate(compile_expression(condition))
    except ExpressionError as err:
        raise FatalNodeError(f"Loop controller '{ctx.node_id}': {err}", cause=err) from err
    if is_truthy(value):
        return NodeResult(action="continue")
    return NodeResult(action="break", output=None)


# --------------------------------------------------------------------------------- subflows
def _child_blueprint(ctx_runtime: Any, node_id: str, params: Mapping[str, Any]) -> Blueprint:
    blueprint_id = params.get("blueprintId")
    if blueprint_id is None or blueprint_id == "":
        raise SubflowError(f"Subflow node '{node_id}' is missing 'blueprintId' parameter.", is_fatal=True)
    child = ctx_runtime.get_blueprint(str(blueprint_id))
    if child is None:
        raise SubflowError(f"Sub-blueprint '{blueprint_id}' not found in runtime registry.", is_fatal=True)
    return load_blueprint(child)


def _subflow_output(
    runtime: Any, child: Blueprint, params: Mapping[str, Any], context: Mapping[str, Any]
) -> tuple[Any, dict[str, Any]]:
    """(the subflow node's output, the parent context writes of ``params.outputs``)."""
    outputs = params.get("outputs")
    if isinstance(outputs, Mapping) and outputs:
        writes = {}
        for parent_key, child_key in outputs.items():
            value = context.get(f"_outputs.{child_key}")
            writes[str(parent_key)] = context.get(str(child_key)) if value is None else value
        return dict(context), writes
    terminals = runtime.compile(child).analysis.terminal_node_ids
    if len(terminals) == 1:
        return context.get(f"_outputs.{terminals[0]}"), {}
    return {t: context.get(f"_outputs.{t}") for t in terminals}, {}


def _subflow_failure(
    blueprint_id: str, status: str, errors: list[Any], resumed: bool = False
) -> SubflowError:
    first = errors[0].message if errors else "Unknown error"
    if resumed:
        return SubflowError(
            f"Resumed subflow '{blueprint_id}' did not complete. Status: {status}. Error: {first}"
        )
    return SubflowError(
        f"Sub-workflow '{blueprint_id}' did not complete successfully. Status: {status}. Error: {first}"
    )


async def subflow_node(ctx: NodeContext) -> Any:
    """Run another registered blueprint inside this node. ``params``: ``blueprintId``,
    ``inputs`` ({childKey: parentKey}), ``outputs`` ({parentKey: childNodeIdOrKey})."""
    from .execution import _Run

    runtime = ctx.runtime
    params = ctx.params
    child = _child_blueprint(runtime, ctx.node_id, params)
    compiled = runtime.compile(child)
    initial: dict[str, Any] = {}
    inputs = params.get("inputs")
    if isinstance(inputs, Mapping) and inputs:
        for child_key, parent_key in inputs.items():
            value = await ctx.get(str(parent_key))
            if value is None:
                value = await ctx.get(f"_outputs.{parent_key}")
            initial[str(child_key)] = value
    elif ctx.input is not None:
        for start in compiled.graph.start:
            initial[f"_inputs.{compiled.nodes[start].id}"] = ctx.input
    parent_run: _Run | None = getattr(ctx, "_run", None)
    run = _Run(
        runtime,
        compiled,
        initial,
        signal=ctx.signal,
        concurrency=None,
        registry=parent_run.extra_registry if parent_run else None,
        run_id=ctx.run_id,
        emit_workflow_events=False,
    )
    result = await run.start()
    if result.status == "awaiting":
        ctx.mark_awaiting({"reason": "subflow", "blueprintId": child.id})
        await ctx.set(f"_subflowState.{ctx.node_id}", result.context)
        return None
    if result.status != "completed":
        raise _subflow_failure(child.id, result.status, result.errors)
    output, writes = _subflow_output(runtime, child, params, result.context)
    for key, value in writes.items():
        await ctx.set(key, value)
    return output


class SubflowStillAwaiting(Exception):
    """Internal: the resumed child paused again."""

    def __init__(self, state: dict[str, Any]) -> None:
        super().__init__("subflow still awaiting")
        self.state = state


async def resume_subflow(run: _Run, node: CompiledNode, state: Any, output: Any, action: str | None) -> Any:
    """Resume the paused child of a subflow node; returns the subflow node's output."""
    from .execution import _Run as RunClass
    from .runtime import _initial_data

    params = node.definition.params
    runtime = run.runtime
    child = _child_blueprint(runtime, node.id, params)
    child_run = RunClass(
        runtime,
        runtime.compile(child),
        _initial_data(state),
        signal=run.signal,
        concurrency=None,
        registry=run.extra_registry,
        run_id=run.run_id,
        emit_workflow_events=False,
    )
    result = await child_run.resume(None, output, action)
    if result.status == "awaiting":
        raise SubflowStillAwaiting(result.context)
    if result.status != "completed":
        raise _subflow_failure(child.id, result.status, result.errors, resumed=True)
    value, writes = _subflow_output(runtime, child, params, result.context)
    run.data.update(writes)
    return value


# ----------------------------------------------------------------------------------- batches
async def batch_scatter_node(ctx: NodeContext) -> NodeResult:
    """Fan a list out to one worker node per item (``params.workerUsesKey``), ``chunkSize`` at a
    time; ``params.gatherNodeId`` collects the results."""
    params = ctx.params
    worker = params.get("workerUsesKey")
    gather_id = params.get("gatherNodeId")
    if not isinstance(worker, str) or not isinstance(gather_id, str):
        raise FatalNodeError(
            f"Batch scatter node '{ctx.node_id}' needs string 'workerUsesKey' and 'gatherNodeId' parameters"
        )
    items = ctx.input
    if not isinstance(items, (list, tuple)):
        raise NodeError(f"Input for batch-scatter node '{ctx.node_id}' must be an array.")
    scatter_id = str(params.get("_scatterId") or ctx.node_id)
    start = int(params.get("_startIndex") or 0)
    chunk = params.get("chunkSize")
    size = (
        int(chunk)
        if isinstance(chunk, (int, float)) and not isinstance(chunk, bool) and chunk >= 1
        else len(items)
    )
    end = min(start + max(size, 1), len(items))
    batch_id = uuid.uuid4().hex[:12]
    dynamic: list[NodeDefinition] = []
    worker_ids: list[str] = []
    for i in range(start, end):
        key = f"_batch.{scatter_id}_{batch_id}_item_{i}"
        await ctx.set(key, items[i])
        worker_id = f"{worker}_{batch_id}_{i}"
        worker_ids.append(worker_id)
        dynamic.append(NodeDefinition(id=worker_id, uses=worker, inputs=key))
    previous = (await ctx.get(f"{gather_id}_allWorkerIds")) if start else None
    await ctx.set(f"{gather_id}_allWorkerIds", [*(previous or []), *worker_ids])
    has_more = end < len(items)
    await ctx.set(f"{scatter_id}_currentIndex", end)
    await ctx.set(f"{gather_id}_hasMore", has_more)
    if has_more:
        definition = ctx.definition
        source_inputs = (
            definition.inputs if definition is not None and isinstance(definition.inputs, str) else None
        )
        dynamic.append(
            NodeDefinition(
                id=f"{scatter_id}_next_{end}",
                uses="batch-scatter",
                inputs=source_inputs or f"_inputs.{scatter_id}",
                params={**params, "_startIndex": end, "_scatterId": scatter_id},
            )
        )
    if ctx.runtime.event_bus is not None:
        from .events import FlowEvent, emit

        await emit(
            ctx.runtime.event_bus,
            FlowEvent(
                "batch:start",
                {
                    "batchId": scatter_id.removesuffix("_scatter"),
                    "scatterNodeId": ctx.node_id,
                    "workerNodeIds": worker_ids,
                },
            ),
        )
    return NodeResult(output={"gatherNodeId": gather_id, "hasMore": has_more}, dynamic_nodes=dynamic)


async def batch_gather_node(ctx: NodeContext) -> Any:
    """Collect the outputs of every worker of the batch, in item order, into ``params.outputKey``
    (default: this node's id)."""
    gather_id = str(ctx.params.get("gatherNodeId") or ctx.node_id)
    worker_ids = await ctx.get(f"{gather_id}_allWorkerIds") or []
    results = []
    for worker_id in worker_ids:
        key = f"_outputs.{worker_id}"
        if await ctx.has(key):
            results.append(await ctx.get(key))
    output_key = ctx.params.get("outputKey") or ctx.node_id
    await ctx.set(str(output_key), results)
    if ctx.runtime.event_bus is not None:
        from .events import FlowEvent, emit

        await emit(
            ctx.runtime.event_bus,
            FlowEvent(
                "batch:finish",
                {
                    "batchId": gather_id.removesuffix("_gather"),
                    "gatherNodeId": ctx.node_id,
                    "results": results,
                },
            ),
        )
    return results


BUILTIN_NODES: dict[str, NodeImplementation] = {
    "wait": wait_node,
    "sleep": sleep_node,
    "subflow": subflow_node,
    "batch-scatter": batch_scatter_node,
    "batch-gather": batch_gather_node,
    "loop-controller": loop_controller_node,
}
