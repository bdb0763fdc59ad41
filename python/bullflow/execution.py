"""One execution of a blueprint in this process (used by :class:`bullflow.FlowRuntime`).

Scheduling is event-driven: a node starts as soon as the scheduling rule (``_impl.RunState``) makes
it ready, up to ``concurrency`` nodes at a time per run. A node's context writes are committed when
it succeeds; its output lands in ``_outputs.<id>`` and the ``<id>`` alias; edges are chosen
action-first with unlabelled edges as the default branch, and conditions guard either kind.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._impl import RunState
from ._pure.graph import AWAITING, COMPLETED, PENDING
from .blueprint import NodeDefinition, _build_node
from .cancellation import CancellationSignal
from .compile import (
    CompiledBlueprint,
    CompiledEdge,
    CompiledExpression,
    CompiledNode,
    dynamic_node,
)
from .context import DELETED, NodeContextView
from .events import FlowEvent
from .exceptions import (
    ExpressionError,
    MissingImplementationError,
    NodeError,
    NodeTimeoutError,
    ResumeError,
    WorkflowCancelledError,
)
from .expressions import is_truthy
from .middleware import build_chain
from .nodes import BaseNode, NodeContext, NodeImplementation, NodeResult, is_node_class
from .results import WorkflowError, WorkflowResult

if TYPE_CHECKING:
    from .runtime import FlowRuntime

__all__ = ["AWAITING_DETAILS", "AWAITING_IDS", "TRAVERSAL"]

logger = logging.getLogger(__name__)

AWAITING_IDS = "_awaitingNodeIds"
AWAITING_DETAILS = "_awaitingDetails"
TRAVERSAL = "_traversal"
_MISSING: Any = object()


class _Outcome:
    __slots__ = ("awaiting", "error", "kind", "result", "view")

    def __init__(
        self,
        kind: str,
        result: NodeResult | None = None,
        error: NodeError | None = None,
        view: NodeContextView | None = None,
        awaiting: dict[str, Any] | None = None,
    ) -> None:
        self.kind = kind  # "success" | "failed" | "fallback" | "cancelled"
        self.result = result
        self.error = error
        self.view = view
        self.awaiting = awaiting


class _ConditionScope(Mapping[str, Any]):
    """``{...context, result}`` without copying the context."""

    __slots__ = ("_data", "_result")

    def __init__(self, data: Mapping[str, Any], result: dict[str, Any]) -> None:
        self._data = data
        self._result = result

    def __getitem__(self, key: str) -> Any:
        if key == "result":
            return self._result
        return self._data[key]

    def __contains__(self, key: object) -> bool:
        return key == "result" or key in self._data

    def get(self, key: str, default: Any = None) -> Any:
        if key == "result":
            return self._result
        return self._data.get(key, default)

    def __iter__(self) -> Any:
        yield "result"
        yield from (k for k in self._data if k != "result")

    def __len__(self) -> int:
        return len(self._data) + (0 if "result" in self._data else 1)


class _Run:
    """One execution (or resumption) of a blueprint."""

    first_attempt = 1  # the attempt number a node execution starts counting at

    def __init__(
        self,
        runtime: FlowRuntime,
        compiled: CompiledBlueprint,
        data: dict[str, Any],
        *,
        signal: CancellationSignal | None,
        concurrency: int | None,
        registry: Mapping[str, NodeImplementation] | None,
        run_id: str | None,
        emit_workflow_events: bool = True,
    ) -> None:
        self.runtime = runtime
        self.compiled = compiled
        self.blueprint_id = compiled.blueprint.id
        self.data = data
        self.signal = signal or CancellationSignal()
        self.limit = concurrency if concurrency and concurrency > 0 else runtime.concurrency
        self.extra_registry = registry
        self.registry = {**runtime.registry, **registry} if registry else runtime.registry
        self.run_id = run_id or str(uuid.uuid4())
        self.bus = runtime.event_bus
        self.middleware = runtime.middleware
        self.scheduler = RunState(compiled.graph, runtime.max_waves)
        self.nodes: list[CompiledNode] = compiled.nodes
        self.index: dict[str, int] = compiled.index
        self.errors: list[WorkflowError] = []
        self.skipped: list[int] = []
        self.transformed: set[int] = set()
        self.awaiting: dict[str, dict[str, Any]] = {}
        self.emit_workflow_events = emit_workflow_events
        self._completions: deque[asyncio.Task[_Outcome]] = deque()
        self._events: deque[FlowEvent] = deque()
        self._wakeup: asyncio.Future[None] | None = None

    # ------------------------------------------------------------------------------- lifecycle
    async def start(self) -> WorkflowResult:
        if self.bus is not None and self.emit_workflow_events:
            await self._emit("workflow:start", {"blueprintId": self.blueprint_id, "executionId": self.run_id})
        self._restore_awaiting()
        return await self._drive(self.scheduler.start())

    async def resume(self, node_id: str | None, output: Any, action: str | None) -> WorkflowResult:
        data = self.data
        awaiting_ids = data.get(AWAITING_IDS)
        if not awaiting_ids:
            raise ResumeError("Cannot resume: The provided context is not in an awaiting state.")
        node_id = awaiting_ids[0] if node_id is None else node_id
        if node_id not in awaiting_ids:
            raise ResumeError(f"Cannot resume: Node '{node_id}' is not in an awaiting state.")
        i = self.index.get(node_id)
        if i is None:
            raise ResumeError(f"Awaiting node '{node_id}' not found in blueprint.")
        self._restore_scheduler()
        if self.bus is not None and self.emit_workflow_events:
            await self._emit(
                "workflow:resume", {"blueprintId": self.blueprint_id, "executionId": self.run_id}
            )
        node = self.nodes[i]
        subflow_key = f"_subflowState.{node_id}"
        if subflow_key in data:
            from .builtins import SubflowStillAwaiting, resume_subflow

            try:
                output = await resume_subflow(self, node, data.pop(subflow_key), output, action)
            except SubflowStillAwaiting as still:
                data[subflow_key] = still.state
                return await self._drive([])
            except NodeError as err:
                err = self._node_error(node.definition, err)
                self.awaiting.pop(node_id, None)
                self.scheduler.fail(i)
                self.errors.append(WorkflowError(message=str(err), node_id=node_id, error=err))
                return await self._drive([])
            action = None
        if output is _MISSING:
            output = data.get(f"_outputs.{node_id}")
        data[f"_outputs.{node_id}"] = output
        data[node_id] = output
        self.awaiting.pop(node_id, None)
        result = NodeResult(output=output, action=action)
        taken = self._select_edges(node, result)
        self._apply_transforms(node, taken, result)
        ready, skipped = self.scheduler.resume(i, self._taken_ids(node, taken))
        self.skipped.extend(skipped)
        return await self._drive(ready)

    async def _drive(self, initial: list[int]) -> WorkflowResult:
        loop = asyncio.get_running_loop()
        ready: deque[int] = deque(initial)
        running: dict[asyncio.Task[_Outcome], int] = {}
        signal = self.signal
        scheduler = self.scheduler
        mark_running = scheduler.mark_running
        completions = self._completions
        limit = self.limit
        events = self._events
        try:
            while True:
                while ready and len(running) < limit and not signal._cancelled:
                    i = ready.popleft()
                    mark_running(i)
                    if not ready and not running:
                        # The only work there is: run it inline, no task needed.
                        self._handle(i, await self._execute(i), ready)
                        if events:
                            await self._flush_events()
                        continue
                    task = loop.create_task(self._execute(i))
                    running[task] = i
                    task.add_done_callback(self._on_done)
                if not running:
                    break
                if not completions:
                    self._wakeup = loop.create_future()
                    await self._wakeup
                    self._wakeup = None
                while completions:
                    task = completions.popleft()
                    self._handle(running.pop(task), task.result(), ready)
                if events:
                    await self._flush_events()
        except BaseException:
            for task in running:
                task.cancel()
            raise
        if signal.cancelled:
            for i in ready:
                scheduler.reset_pending(i)
        return await self._finish()

    def _on_done(self, task: asyncio.Task[_Outcome]) -> None:
        self._completions.append(task)
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    async def _finish(self) -> WorkflowResult:
        if self._events:
            await self._flush_events()
        data = self.data
        scheduler = self.scheduler
        if self.signal.cancelled:
            status = "cancelled"
        elif self.errors:
            status = "failed"
        elif self.awaiting:
            status = "awaiting"
        else:
            status = "completed"
        if status == "awaiting":
            data[AWAITING_IDS] = list(self.awaiting)
            data[AWAITING_DETAILS] = dict(self.awaiting)
            first_dynamic = len(self.compiled.nodes)
            data[TRAVERSAL] = {
                "state": scheduler.snapshot(),
                "dynamic": [n.definition.to_dict() for n in self.nodes[first_dynamic:]],
            }
        else:
            for key in (AWAITING_IDS, AWAITING_DETAILS, TRAVERSAL):
                data.pop(key, None)
        result = WorkflowResult(
            status=status,  # type: ignore[arg-type]
            context=data,
            errors=self.errors,
            run_id=self.run_id,
            blueprint_id=self.blueprint_id,
            skipped_node_ids=[self.nodes[i].id for i in self.skipped],
        )
        if self.bus is not None and self.emit_workflow_events:
            base = {"blueprintId": self.blueprint_id, "executionId": self.run_id}
            remaining = [self.nodes[i].id for i in scheduler.nodes_with_status(PENDING)]
            if status == "completed" and remaining:
                await self._emit("workflow:stall", {**base, "remainingNodes": remaining})
            if status == "awaiting":
                await self._emit("workflow:pause", base)
            await self._emit("workflow:finish", {**base, "status": status, "errors": self.errors or None})
        if status == "awaiting" and self.emit_workflow_events:
            self.runtime._register_timers(self, result)
        return result

    # ------------------------------------------------------------------------- node execution
    def _resolve_input(self, node: CompiledNode) -> Any:
        d = node.definition
        inputs = d.inputs
        data = self.data
        if inputs is None or node.index in self.transformed:
            return data.get("_inputs." + d.id)
        if isinstance(inputs, str):
            return _lookup(data, inputs)
        return {name: _lookup(data, key) for name, key in inputs.items()}

    async def _execute(self, i: int) -> _Outcome:
        node = self.nodes[i]
        d = node.definition
        impl: Any = self.registry.get(d.uses)
        view = self._new_view()
        ctx = NodeContext(view, self._resolve_input(node), d, self)
        ctx.attempt = self.first_attempt
        if self.bus is not None:
            await self._emit(
                "node:start",
                {
                    "nodeId": d.id,
                    "executionId": self.run_id,
                    "input": ctx.input,
                    "blueprintId": self.blueprint_id,
                },
            )
        try:
            if impl is None:
                raise MissingImplementationError(
                    f"Implementation for '{d.uses}' not found.", node_id=d.id, blueprint_id=self.blueprint_id
                )
            if (
                node.max_attempts == 1
                and node.timeout is None
                and not self.middleware
                and not is_node_class(impl)
            ):
                # The common case: one plain attempt.
                if self.signal._cancelled:
                    raise WorkflowCancelledError(reason=self.signal.reason)
                result = impl(ctx)
                if hasattr(result, "__await__"):
                    result = await result
            else:
                core = self._class_core if is_node_class(impl) else self._function_core
                if self.middleware:
                    result = await build_chain(self.middleware, ctx, d.id, lambda: core(ctx, node, impl))
                else:
                    result = await core(ctx, node, impl)
        except WorkflowCancelledError:
            return _Outcome("cancelled", view=view)
        except Exception as exc:
            error = self._node_error(d, exc)
            if node.fallback is not None and not error.is_fatal:
                if self.bus is not None:
                    fb_id = self.nodes[node.fallback].id
                    await self._emit(
                        "node:fallback",
                        {
                            "nodeId": d.id,
                            "executionId": self.run_id,
                            "fallback": fb_id,
                            "blueprintId": self.blueprint_id,
                        },
                    )
                logger.warning("node %r failed; running fallback node: %s", d.id, error.cause or error)
                return _Outcome("fallback", error=error, view=view)
            return _Outcome("failed", error=error, view=view)
        node_result = result if result.__class__ is NodeResult else NodeResult(output=result)
        return _Outcome("success", node_result, None, view, ctx.awaiting)

    def _new_view(self) -> NodeContextView:
        return NodeContextView(self.data)

    def _attempts(self, node: CompiledNode) -> int:
        """Attempts this execution makes (a distributed job makes one; the queue retries)."""
        return node.max_attempts

    def _last_attempt(self) -> bool:
        """Whether a failure now is final (class-node ``fallback()`` runs only then)."""
        return True

    def _node_error(self, d: NodeDefinition, exc: BaseException) -> NodeError:
        if isinstance(exc, NodeError):
            if exc.node_id is None:
                exc.node_id = d.id
            if exc.blueprint_id is None:
                exc.blueprint_id = self.blueprint_id
            if exc.run_id is None:
                exc.run_id = self.run_id
            return exc
        return NodeError(
            f"Node '{d.id}' execution failed",
            node_id=d.id,
            blueprint_id=self.blueprint_id,
            run_id=self.run_id,
            cause=exc,
        )

    async def _function_core(self, ctx: NodeContext, node: CompiledNode, impl: Any) -> Any:
        return await self._with_retries(ctx, node, lambda: impl(ctx))

    async def _class_core(self, ctx: NodeContext, node: CompiledNode, impl: type[BaseNode]) -> Any:
        d = node.definition
        instance = impl(d.params, d.id)
        self.signal.raise_if_cancelled()
        last_error: BaseException | None = None
        try:
            prep = await _maybe_await(instance.prep(ctx))
            try:
                exec_result = await self._with_retries(ctx, node, lambda: instance.exec(prep, ctx))
            except WorkflowCancelledError:
                raise
            except Exception as exc:
                if (isinstance(exc, NodeError) and exc.is_fatal) or not self._last_attempt():
                    raise
                last_error = exc
                exec_result = await _maybe_await(instance.fallback(exc, ctx))
            return await _maybe_await(instance.post(exec_result, ctx))
        except BaseException as exc:
            last_error = exc
            raise
        finally:
            if last_error is not None and not isinstance(last_error, asyncio.CancelledError):
                try:
                    await _maybe_await(instance.recover(last_error, ctx))
                except Exception:
                    logger.warning("recover() of node %r raised", d.id, exc_info=True)

    async def _with_retries(self, ctx: NodeContext, node: CompiledNode, call: Callable[[], Any]) -> Any:
        attempts = self._attempts(node)
        signal = self.signal
        view = ctx.context
        first = ctx.attempt
        for attempt in range(first, first + attempts):
            signal.raise_if_cancelled()
            ctx.attempt = attempt
            try:
                if node.timeout is None:
                    value = call()
                    if inspect.isawaitable(value):
                        value = await value
                    return value
                return await self._with_timeout(call, node, attempt)
            except WorkflowCancelledError:
                raise
            except Exception as exc:
                if attempt >= first + attempts - 1 or (isinstance(exc, NodeError) and exc.is_fatal):
                    raise
                view.discard()
                logger.warning("node %r attempt %d of %d failed: %r", node.id, attempt, attempts, exc)
                if self.bus is not None:
                    await self._emit(
                        "node:retry",
                        {
                            "nodeId": node.id,
                            "attempt": attempt,
                            "executionId": self.run_id,
                            "blueprintId": self.blueprint_id,
                        },
                    )
                delay = node.retry_delay * (2 ** (attempt - 1) if node.exponential_backoff else 1)
                if delay > 0:
                    await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _with_timeout(self, call: Callable[[], Any], node: CompiledNode, attempt: int) -> Any:
        timeout = node.timeout
        assert timeout is not None

        async def attempt_coro() -> Any:
            value = await asyncio.to_thread(call) if not _is_async_callable(node, self.registry) else call()
            if inspect.isawaitable(value):
                value = await value
            return value

        try:
            return await asyncio.wait_for(attempt_coro(), timeout)
        except asyncio.TimeoutError:
            raise NodeTimeoutError(
                f"Node '{node.id}' timed out after {timeout * 1000:g} ms (attempt {attempt})",
                node_id=node.id,
                blueprint_id=self.blueprint_id,
                run_id=self.run_id,
            ) from None

    # ------------------------------------------------------------------------ result handling
    def _handle(self, i: int, outcome: _Outcome, ready: deque[int]) -> None:
        scheduler = self.scheduler
        node = self.nodes[i]
        node_id = node.id
        data = self.data
        kind = outcome.kind
        if kind == "success":
            result = outcome.result
            assert result is not None and outcome.view is not None
            writes = outcome.view._writes
            if writes:
                self._commit(node_id, writes)
            output = result.output
            data["_outputs." + node_id] = output
            data[node_id] = output
            if self.bus is not None:
                self._emit_soon(
                    "node:finish",
                    {
                        "nodeId": node_id,
                        "result": result,
                        "executionId": self.run_id,
                        "blueprintId": self.blueprint_id,
                    },
                )
                self._emit_change(node_id, "_outputs." + node_id, output)
            workers = self._add_dynamic(node, result) if result.dynamic_nodes else None
            if outcome.awaiting is not None:
                scheduler.suspend(i)
                self.awaiting[node_id] = outcome.awaiting
                return
            if self.signal._cancelled:
                return
            taken = self._select_edges(node, result)
            if taken:
                self._apply_transforms(node, taken, result)
            new_ready, skipped = scheduler.complete(i, self._taken_ids(node, taken))
            if workers:
                new_ready.extend(scheduler.arrive(workers, i))
            if skipped:
                self.skipped.extend(skipped)
            ready.extend(new_ready)
        elif kind == "fallback":
            data["_outputs." + node_id] = None
            data[node_id] = None
            new_ready, skipped = scheduler.complete_with_fallback(i)
            self.skipped.extend(skipped)
            ready.extend(new_ready)
        elif kind == "failed":
            error = outcome.error
            assert error is not None
            scheduler.fail(i)
            self.errors.append(WorkflowError(message=str(error), node_id=node_id, error=error))
            logger.info("node %r of run %s failed: %s", node_id, self.run_id, error.cause or error)
            if self.bus is not None:
                self._emit_soon(
                    "node:error",
                    {
                        "nodeId": node_id,
                        "error": error,
                        "executionId": self.run_id,
                        "blueprintId": self.blueprint_id,
                    },
                )
        else:  # cancelled before or between attempts
            scheduler.reset_pending(i)

    def _commit(self, node_id: str, writes: Mapping[str, Any]) -> None:
        data = self.data
        bus = self.bus
        for key, value in writes.items():
            if value is DELETED:
                existed = data.pop(key, _MISSING) is not _MISSING
                if bus is not None and existed:
                    self._emit_soon(
                        "context:change",
                        {"sourceNode": node_id, "key": key, "op": "delete", "executionId": self.run_id},
                    )
            else:
                data[key] = value
                if bus is not None:
                    self._emit_change(node_id, key, value)

    def _emit_change(self, node_id: str, key: str, value: Any) -> None:
        self._emit_soon(
            "context:change",
            {"sourceNode": node_id, "key": key, "op": "set", "value": value, "executionId": self.run_id},
        )

    def _select_edges(self, node: CompiledNode, result: NodeResult) -> list[CompiledEdge]:
        """Action-first edge selection: edges labelled with the result's action; if none match,
        the unlabelled (default) edges. Conditions guard both kinds. A loop controller's
        conditional edges are checked first (early exit)."""
        edges: Sequence[CompiledEdge] = node.out_edges
        if node.inherits_edges:
            original = self.scheduler.fallback_origin(node.index)
            edges = [e for e in edges if e.source == node.index or e.source == original]
        if not edges:
            return []
        if not node.has_conditions:
            action = result.action
            if action is not None:
                matched = [e for e in edges if e.action == action]
                if matched:
                    return matched
            return [e for e in edges if e.action is None]
        scope: _ConditionScope | None = None

        def passes(edge: CompiledEdge) -> bool:
            nonlocal scope
            if edge.condition is None:
                return True
            if scope is None:
                scope = _ConditionScope(self.data, {"output": result.output, "action": result.action})
            return self._evaluate_condition(node, edge, scope)

        matched = []
        if node.is_loop_controller:
            matched = [e for e in edges if e.condition is not None and passes(e)]
            if matched:
                return matched
        if result.action is not None:
            matched = [e for e in edges if e.action == result.action and passes(e)]
        if not matched:
            matched = [e for e in edges if e.action is None and passes(e)]
        return matched

    def _evaluate_condition(self, node: CompiledNode, edge: CompiledEdge, scope: Mapping[str, Any]) -> bool:
        cond = edge.condition
        assert cond is not None
        value = self._evaluate(node, cond, scope)
        passed = value is not _MISSING and is_truthy(value)
        if self.bus is not None:
            d = edge.definition
            self._emit_soon(
                "edge:evaluate",
                {
                    "source": d.source if d else node.id,
                    "target": d.target if d else "",
                    "condition": cond.source,
                    "result": passed,
                },
            )
            if not passed:
                self._emit_soon(
                    "node:skipped",
                    {
                        "nodeId": node.id,
                        "edge": d.to_dict() if d else None,
                        "executionId": self.run_id,
                        "blueprintId": self.blueprint_id,
                    },
                )
        return passed

    def _evaluate(self, node: CompiledNode, expr: CompiledExpression, scope: Mapping[str, Any]) -> Any:
        """Evaluate an edge expression; a parse or evaluation error is recorded on the run (the
        run then ends ``failed``) and the expression counts as not satisfied."""
        try:
            if expr.error is not None:
                raise expr.error
            assert expr.expression is not None
            return expr.expression.evaluate(scope)
        except ExpressionError as err:
            error = NodeError(
                f"{expr.path}: {err}",
                node_id=node.id,
                blueprint_id=self.blueprint_id,
                run_id=self.run_id,
                cause=err,
            )
            self.errors.append(WorkflowError(message=str(error), node_id=node.id, error=error))
            logger.warning("run %s: %s", self.run_id, error)
            return _MISSING

    def _apply_transforms(self, node: CompiledNode, taken: list[CompiledEdge], result: NodeResult) -> None:
        data = self.data
        nodes = self.nodes
        node_status = self.scheduler.node_status
        for edge in taken:
            target = nodes[edge.target]
            if (
                node_status(edge.target) != PENDING
                and not target.is_loop_controller
                and edge.target != node.loop_start  # a loop's next iteration
            ):
                continue  # a late arrival (an 'any' join that already fired) changes nothing
            td = target.definition
            value = self._edge_input(node, edge, target, result, data)
            if edge.transform is not None:
                self.transformed.add(edge.target)
            data["_inputs." + td.id] = value
            if self.bus is not None:
                self._emit_soon(
                    "context:change",
                    {
                        "sourceNode": node.id,
                        "key": "_inputs." + td.id,
                        "op": "set",
                        "value": value,
                        "executionId": self.run_id,
                    },
                )

    def _edge_input(
        self,
        node: CompiledNode,
        edge: CompiledEdge,
        target: CompiledNode,
        result: NodeResult,
        data: Mapping[str, Any],
    ) -> Any:
        """The input an edge hands its target: the output, or what the edge's transform makes of
        it (when the target names another input source, the transform starts from that)."""
        value = result.output
        if edge.transform is None:
            return value
        inputs = target.definition.inputs
        source_id = edge.definition.source if edge.definition else node.id
        if isinstance(inputs, str) and inputs != source_id:
            key = inputs if inputs.startswith("_") else "_outputs." + inputs
            if key in data:
                value = data[key]
        value = self._evaluate(node, edge.transform, {"input": value, "context": data})
        return None if value is _MISSING else value

    # ------------------------------------------------------------------------ dynamic nodes
    @staticmethod
    def _taken_ids(node: CompiledNode, taken: list[CompiledEdge]) -> list[int] | None:
        """Edge ids for the run state; None when every outgoing edge was taken."""
        if len(taken) == len(node.out_edges):
            return None
        return [e.index for e in taken]

    def _add_dynamic(self, node: CompiledNode, result: NodeResult) -> list[int]:
        """Register the nodes a batch scatter returned; returns the worker indices."""
        gather, workers, continuation = split_dynamic_nodes(result, self.index)
        new = self.scheduler.add_dynamic_nodes(node.index, gather, len(workers), bool(continuation))
        self._register_dynamic(new, workers + continuation)
        return new[: len(workers)]

    def _register_dynamic(self, indices: list[int], defs: list[NodeDefinition]) -> None:
        if self.nodes is self.compiled.nodes:
            self.nodes = list(self.nodes)
            self.index = dict(self.index)
        scheduler = self.scheduler
        for index, definition in zip(indices, defs, strict=True):
            targets = [(e, scheduler.edge_target(e)) for e in scheduler.out_edges(index)]
            self.nodes.append(dynamic_node(index, definition, targets))
            self.index[definition.id] = index

    # ------------------------------------------------------------------------ state restore
    def _restore_awaiting(self) -> None:
        """A context given to ``run`` may already carry awaiting markers; they are cleared."""
        for key in (AWAITING_IDS, AWAITING_DETAILS, TRAVERSAL):
            self.data.pop(key, None)

    def _restore_scheduler(self) -> None:
        data = self.data
        details = data.pop(AWAITING_DETAILS, None) or {}
        ids = data.pop(AWAITING_IDS, None) or []
        traversal = data.pop(TRAVERSAL, None)
        for node_id in ids:
            self.awaiting[node_id] = dict(details.get(node_id) or {"reason": "external_event"})
        if isinstance(traversal, Mapping) and isinstance(traversal.get("state"), Mapping):
            self.scheduler.restore(traversal["state"])
            defs = [_node_definition(d) for d in traversal.get("dynamic") or ()]
            base = len(self.compiled.nodes)
            self._register_dynamic(list(range(base, base + len(defs))), defs)
            return
        # A context from elsewhere (e.g. Flowcraft): completed = the nodes with outputs.
        graph = self.compiled.graph
        status = [COMPLETED if f"_outputs.{node_id}" in data else PENDING for node_id in graph.node_ids]
        for node_id in ids:
            index = graph.index_of(node_id)
            if index is not None:
                status[index] = AWAITING
        arrived: dict[str, list[int]] = {}
        for i, st in enumerate(status):
            if st == PENDING:
                done = [p for p in graph.preds(i) if status[p] == COMPLETED]
                if done:
                    arrived[str(i)] = done
        self.scheduler.restore(
            {"graph": graph.content_hash, "status": status, "arrived": arrived, "resolved": arrived}
        )

    # ------------------------------------------------------------------------------ events
    async def _emit(self, type: str, payload: dict[str, Any]) -> None:
        bus = self.bus
        if bus is None:
            return
        try:
            outcome = bus.emit(FlowEvent(type, payload))
            if inspect.isawaitable(outcome):
                await outcome
        except Exception:
            logger.warning("event bus failed on %s", type, exc_info=True)

    def _emit_soon(self, type: str, payload: dict[str, Any]) -> None:
        """Queue an event from synchronous code; the driver emits queued events in order."""
        if self.bus is not None:
            self._events.append(FlowEvent(type, payload))

    async def _flush_events(self) -> None:
        bus = self.bus
        events = self._events
        while events:
            event = events.popleft()
            if bus is None:
                continue
            try:
                outcome = bus.emit(event)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                logger.warning("event bus failed on %s", event.type, exc_info=True)


def split_dynamic_nodes(
    result: NodeResult, index: Mapping[str, int]
) -> tuple[int | None, list[NodeDefinition], list[NodeDefinition]]:
    """What a batch scatter returned: (the gather node's index, the worker nodes, the
    continuation scatter if the list goes on in another chunk -- at most one)."""
    defs = [d if isinstance(d, NodeDefinition) else _node_definition(d) for d in result.dynamic_nodes or ()]
    output = result.output if isinstance(result.output, Mapping) else {}
    gather = index.get(str(output.get("gatherNodeId")))
    workers = [d for d in defs if d.uses != "batch-scatter"]
    continuation = [d for d in defs if d.uses == "batch-scatter"][:1]
    return gather, workers, continuation


def _node_definition(raw: Mapping[str, Any]) -> NodeDefinition:
    return _build_node(raw, "dynamicNodes")


def _lookup(data: Mapping[str, Any], key: str) -> Any:
    """Flowcraft's input resolution for one key: ``_``-prefixed keys are read as they are;
    otherwise ``_outputs.<key>`` if present, else the context key; ``node.a.b`` walks into
    ``_outputs.node``."""
    if key.startswith("_"):
        return data.get(key)
    out = data.get("_outputs." + key, _MISSING)
    if out is not _MISSING:
        return out
    value = data.get(key, _MISSING)
    if value is not _MISSING:
        return value
    if "." in key:
        head, _, rest = key.partition(".")
        current = data.get("_outputs." + head)
        for part in rest.split("."):
            if isinstance(current, Mapping):
                current = current.get(part)
            elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
                current = current[int(part)]
            else:
                return None
        return current
    return None


def _is_async_callable(node: CompiledNode, registry: Mapping[str, Any]) -> bool:
    impl = registry.get(node.definition.uses)
    if is_node_class(impl):
        return inspect.iscoroutinefunction(getattr(impl, "exec", None))
    call = type(impl).__dict__.get("__call__")
    return inspect.iscoroutinefunction(impl) or inspect.iscoroutinefunction(call)


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value
