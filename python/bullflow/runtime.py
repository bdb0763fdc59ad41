"""The in-process runtime (the embedded default; no Redis): :class:`FlowRuntime` runs blueprints
inside one asyncio event loop with Flowcraft's semantics, minus Flowcraft's defects (README
"Semantics"); ``execution.py`` holds one run's machinery.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import orjson

from .blueprint import Blueprint, BlueprintSource, load_blueprint
from .cancellation import CancellationSignal
from .compile import (
    CompiledBlueprint,
    compile_blueprint,
)
from .events import EventBus
from .exceptions import BlueprintError
from .execution import _MISSING, AWAITING_DETAILS, _Run
from .middleware import Middleware
from .nodes import NodeImplementation
from .results import WorkflowResult

__all__ = ["FlowRuntime"]

logger = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 10


class FlowRuntime:
    """Runs blueprints in this process.

    ``registry`` maps ``uses`` keys to node functions or classes (merged over the built-ins:
    wait, sleep, subflow, batch-scatter, batch-gather, loop-controller); ``blueprints`` are the
    blueprints subflows (and ``run("<id>")``) refer to, as a mapping id -> blueprint or a list.
    ``concurrency`` limits the nodes of one run that execute at once (default 10).
    """

    def __init__(
        self,
        *,
        registry: Mapping[str, NodeImplementation] | None = None,
        blueprints: Mapping[str, BlueprintSource] | Iterable[BlueprintSource] | None = None,
        dependencies: Mapping[str, Any] | None = None,
        event_bus: EventBus | None = None,
        middleware: Sequence[Middleware] = (),
        concurrency: int | None = None,
        strict: bool = False,
        max_waves: int = 10_000,
    ) -> None:
        from .builtins import BUILTIN_NODES

        self.registry: dict[str, NodeImplementation] = {**BUILTIN_NODES, **(registry or {})}
        self.blueprints: dict[str, Blueprint] = {}
        if blueprints is not None:
            if isinstance(blueprints, Mapping):
                for key, source in blueprints.items():
                    self.register_blueprint(source, id=key)
            else:
                for source in blueprints:
                    self.register_blueprint(source)
        self.dependencies: dict[str, Any] = dict(dependencies or {})
        self.event_bus = event_bus
        self.middleware: tuple[Middleware, ...] = tuple(middleware)
        self.concurrency = concurrency if concurrency and concurrency > 0 else DEFAULT_CONCURRENCY
        self.strict = strict
        self.max_waves = max_waves
        self._compiled: OrderedDict[tuple[int, bool], tuple[Blueprint, CompiledBlueprint]] = OrderedDict()
        self._timers: dict[str, _TimerEntry] = {}
        self._resume_results: dict[str, WorkflowResult] = {}
        self._scheduler_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------------------ blueprints
    def register_blueprint(self, source: BlueprintSource, *, id: str | None = None) -> Blueprint:
        bp = load_blueprint(source, id=id)
        self.blueprints[bp.id] = bp
        return bp

    def get_blueprint(self, blueprint_id: str) -> Blueprint | None:
        return self.blueprints.get(blueprint_id)

    def compile(self, blueprint: Blueprint | str, *, strict: bool | None = None) -> CompiledBlueprint:
        """The compiled form of a blueprint (cached per blueprint object)."""
        bp = self._resolve(blueprint)
        strict = self.strict if strict is None else strict
        key = (id(bp), strict)
        hit = self._compiled.get(key)
        if hit is not None and hit[0] is bp:
            self._compiled.move_to_end(key)
            return hit[1]
        compiled = compile_blueprint(bp, strict=strict)
        self._compiled[key] = (bp, compiled)
        if len(self._compiled) > 512:
            self._compiled.popitem(last=False)
        return compiled

    def _resolve(self, blueprint: BlueprintSource | str) -> Blueprint:
        if isinstance(blueprint, Blueprint):
            return blueprint
        if isinstance(blueprint, str) and blueprint in self.blueprints:
            return self.blueprints[blueprint]
        if isinstance(blueprint, str) and not blueprint.lstrip().startswith("{"):
            raise BlueprintError(f"unknown blueprint id {blueprint!r}; register it with the runtime first")
        return load_blueprint(blueprint)

    # ------------------------------------------------------------------------------------ runs
    async def run(
        self,
        blueprint: BlueprintSource | str,
        initial_context: Mapping[str, Any] | str | None = None,
        *,
        signal: CancellationSignal | None = None,
        strict: bool | None = None,
        concurrency: int | None = None,
        registry: Mapping[str, NodeImplementation] | None = None,
        run_id: str | None = None,
    ) -> WorkflowResult:
        """Run a blueprint (an object, a registered id, a dict or JSON) to completion, failure,
        cancellation or a pause (``awaiting``)."""
        compiled = self.compile(self._resolve(blueprint), strict=strict)
        data = _initial_data(initial_context)
        run = _Run(
            self, compiled, data, signal=signal, concurrency=concurrency, registry=registry, run_id=run_id
        )
        return await run.start()

    def run_sync(
        self,
        blueprint: BlueprintSource | str,
        initial_context: Mapping[str, Any] | str | None = None,
        **options: Any,
    ) -> WorkflowResult:
        """``run`` for scripts: starts an event loop (not from inside a running loop)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.run(blueprint, initial_context, **options))
        raise RuntimeError(
            "run_sync() cannot be called from a running event loop; use `await runtime.run(...)`"
        )

    async def resume(
        self,
        blueprint: BlueprintSource | str,
        state: WorkflowResult | Mapping[str, Any] | str,
        *,
        node_id: str | None = None,
        output: Any = _MISSING,
        action: str | None = None,
        signal: CancellationSignal | None = None,
        concurrency: int | None = None,
        registry: Mapping[str, NodeImplementation] | None = None,
        run_id: str | None = None,
    ) -> WorkflowResult:
        """Continue an ``awaiting`` run at ``node_id`` (default: the first awaiting node).

        ``output`` replaces the node's output; ``action`` routes its outgoing edges like a node
        result's action (so a wait node can branch on approve/reject)."""
        if isinstance(state, WorkflowResult):
            run_id = run_id or state.run_id or None
            data = dict(state.context)
        else:
            data = _initial_data(state)
        compiled = self.compile(self._resolve(blueprint))
        run = _Run(
            self, compiled, data, signal=signal, concurrency=concurrency, registry=registry, run_id=run_id
        )
        if run.run_id in self._timers:
            self._timers.pop(run.run_id, None)
        return await run.resume(node_id, output, action)

    # ------------------------------------------------------------------------ timer scheduler
    def start_scheduler(self, check_interval: float = 1.0) -> None:
        """Resume runs paused at a ``sleep`` node once their wake-up time has passed (in-memory,
        like Flowcraft's WorkflowScheduler). Results are kept for ``get_resume_result``."""
        if self._scheduler_task is None or self._scheduler_task.done():
            self._scheduler_task = asyncio.get_running_loop().create_task(self._timer_loop(check_interval))

    async def stop_scheduler(self) -> None:
        task, self._scheduler_task = self._scheduler_task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    def active_timers(self) -> list[str]:
        return list(self._timers)

    def get_resume_result(self, run_id: str) -> WorkflowResult | None:
        return self._resume_results.get(run_id)

    async def _timer_loop(self, interval: float) -> None:
        while True:
            now = datetime.now(timezone.utc)
            for run_id, entry in list(self._timers.items()):
                if entry.wake_up_at > now:
                    continue
                self._timers.pop(run_id, None)
                try:
                    result = await self.resume(
                        entry.blueprint,
                        entry.context,
                        node_id=entry.node_id,
                        run_id=run_id,
                        registry=entry.registry,
                    )
                except Exception:
                    logger.exception("scheduled resume of run %s failed", run_id)
                    continue
                self._resume_results[run_id] = result
            await asyncio.sleep(interval)

    def _register_timers(self, run: _Run, result: WorkflowResult) -> None:
        details = result.context.get(AWAITING_DETAILS) or {}
        for node_id, detail in details.items():
            if isinstance(detail, Mapping) and detail.get("reason") == "timer" and detail.get("wakeUpAt"):
                self._timers[run.run_id] = _TimerEntry(
                    blueprint=run.compiled.blueprint,
                    context=dict(result.context),
                    node_id=node_id,
                    wake_up_at=datetime.fromisoformat(str(detail["wakeUpAt"]).replace("Z", "+00:00")),
                    registry=run.extra_registry,
                )
                return


class _TimerEntry:
    __slots__ = ("blueprint", "context", "node_id", "registry", "wake_up_at")

    def __init__(
        self,
        *,
        blueprint: Blueprint,
        context: dict[str, Any],
        node_id: str,
        wake_up_at: datetime,
        registry: Mapping[str, NodeImplementation] | None,
    ) -> None:
        self.blueprint = blueprint
        self.context = context
        self.node_id = node_id
        self.wake_up_at = wake_up_at
        self.registry = registry


def _initial_data(initial: Mapping[str, Any] | str | bytes | None) -> dict[str, Any]:
    if initial is None:
        return {}
    if isinstance(initial, (str, bytes)):
        try:
            initial = orjson.loads(initial)
        except orjson.JSONDecodeError as err:
            raise BlueprintError(f"initial context is not valid JSON: {err}") from None
    if not isinstance(initial, Mapping):
        raise BlueprintError(f"the initial context must be an object, got {type(initial).__name__}")
    return dict(initial)
