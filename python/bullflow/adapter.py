"""The distributed worker: :class:`BullMQAdapter` consumes ``executeNode`` jobs with the ``bullmq``
package and runs each node with the in-process runtime's executor, then commits the outcome with
one coordination call (``completeNode`` / ``failNode``).

Per job: one pipelined read (the run's coordination fields for the node and the state fields the
node is known to need), the node, one commit. A job for a node that is not ready for that
iteration (a replay after a crash, a job of a cancelled or finished run) is acknowledged without
running anything. Retries are the queue's: a failed attempt raises so bullmq retries it with the
node's backoff, and only the last attempt fails the node (or hands over to its fallback).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, cast

import orjson
from bullmq import (  # type: ignore[import-untyped]
    DelayedError,
    UnrecoverableError,
    WaitingChildrenError,
    Worker,
)
from bullmq.job import Job, optsFromJSON  # type: ignore[import-untyped]
from bullmq.scripts import raw2NextJobData  # type: ignore[import-untyped]
from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from . import keys
from ._impl import decode_value, encode_value
from ._pure.graph import PENDING
from .blueprint import Blueprint, BlueprintSource, load_blueprint
from .cancellation import CancellationSignal
from .compile import CompiledBlueprint, CompiledNode, dynamic_node
from .coordination import CoordinationStore, NodeCommit, RedisCoordinationStore, RunOptions
from .exceptions import BullflowError, CodecError, NodeError
from .execution import _lookup, _node_definition, _Outcome, _Run, split_dynamic_nodes
from .fleet import DEFAULT_HEARTBEAT_INTERVAL, WorkerHeartbeat
from .job_batch import FinishBatcher, log_commit_reply
from .nodes import NodeImplementation, NodeResult
from .pubsub import listen_for_ids
from .redis_context import RedisContext, evaluate_lazily
from .runtime import FlowRuntime
from .scripts import ScriptCode
from .settings import RedisSettings

__all__ = ["BullMQAdapter"]

logger = logging.getLogger(__name__)

_READY = 1
_RUN_FIELDS = ("st", "g", "bp")
_MAX_LEARNED_KEYS = 64
DEFAULT_MAX_PAYLOAD_BYTES = 16 * 1024 * 1024


class _Nodes:
    """``nodes[i]`` for a job: the compiled nodes plus the one dynamic node it runs."""

    __slots__ = ("_extra", "_static")

    def __init__(self, static: list[CompiledNode], extra: CompiledNode | None) -> None:
        self._static = static
        self._extra = extra

    def __getitem__(self, i: int) -> CompiledNode:
        if self._extra is not None and i == self._extra.index:
            return self._extra
        return self._static[i]

    def __len__(self) -> int:
        return len(self._static)


class _FallbackOrigin:
    """The one run-state query edge selection makes (for a fallback node carrying edges)."""

    __slots__ = ("origin",)

    def __init__(self, origin: int | None) -> None:
        self.origin = origin

    def fallback_origin(self, i: int) -> int | None:
        return self.origin

    def node_status(self, i: int) -> int:
        return PENDING


class _JobRun(_Run):
    """The executor of :class:`bullflow.FlowRuntime` set up for one job: a single node, its
    context read from Redis, one attempt per job (the queue retries)."""

    def __init__(
        self,
        runtime: FlowRuntime,
        compiled: CompiledBlueprint,
        run_id: str,
        view: RedisContext,
        node_input: Any,
        nodes: _Nodes,
        signal: CancellationSignal,
        *,
        attempt: int,
        attempts: int | None,
        last_attempt: bool,
        fallback_origin: int | None,
    ) -> None:
        # Deliberately not calling _Run.__init__: no run-wide scheduler state for one job.
        self.runtime = runtime
        self.compiled = compiled
        self.blueprint_id = compiled.blueprint.id
        self.data = cast("dict[str, Any]", view.loaded)
        self.signal = signal
        self.limit = 1
        self.extra_registry = None
        self.registry = runtime.registry
        self.run_id = run_id
        self.bus = runtime.event_bus
        self.middleware = runtime.middleware
        self.scheduler = cast("Any", _FallbackOrigin(fallback_origin))
        self.nodes = cast("Any", nodes)
        self.index = compiled.index
        self.errors = []
        self.skipped = []
        self.transformed = set()
        self.awaiting = {}
        self.emit_workflow_events = False
        self._completions = cast("Any", None)
        self._events = deque()
        self._wakeup = None
        self.view = view
        self.node_input = node_input
        self.first_attempt = attempt
        self.attempt_limit = attempts
        self.is_last = last_attempt

    def _new_view(self) -> RedisContext:
        return self.view

    def _resolve_input(self, node: CompiledNode) -> Any:
        return self.node_input

    def _attempts(self, node: CompiledNode) -> int:
        return node.max_attempts if self.attempt_limit is None else 1

    def _last_attempt(self) -> bool:
        return self.is_last


class BullMQAdapter:
    """A worker of distributed runs (Flowcraft's ``BullMQAdapter``).

    ``registry`` maps ``uses`` keys to node implementations (the built-ins are included);
    ``blueprints`` are the blueprints runs may start from (mapping id -> blueprint, or a list);
    ``connection`` is a Redis URL or :class:`RedisSettings`; ``coordination_store`` is
    ``"lua"`` (default, :class:`RedisCoordinationStore`), ``"python"``
    (:class:`~bullflow.python_coordination.PythonCoordinationStore`) or a store instance;
    ``concurrency`` is the number of jobs this process runs at once; ``worker_loop`` is
    ``"fast"`` (default: the commits of the jobs this process's slots finish at the same time,
    those jobs completed and the next ones taken, with what their nodes need read along, in one
    ``finishJobs`` call; :mod:`bullflow.job_batch`), ``"chained"`` (the commit pipelined with
    bullmq's own ``moveToFinished`` that fetches the next job) or ``"bullmq"`` (the stock
    ``bullmq.Worker`` loop: commit, then bullmq's finish and fetch calls);
    ``heartbeat_interval`` is the seconds between the heartbeats that list this worker as live
    (:mod:`bullflow.fleet`; None: no heartbeats).
    """

    def __init__(
        self,
        *,
        registry: Mapping[str, NodeImplementation] | None = None,
        blueprints: Mapping[str, BlueprintSource] | Iterable[BlueprintSource] | None = None,
        connection: str | RedisSettings = "redis://127.0.0.1:6379/0",
        queue_name: str = keys.DEFAULT_QUEUE,
        coordination_store: str | CoordinationStore = "lua",
        concurrency: int = 5,
        runtime: FlowRuntime | None = None,
        run_options: RunOptions | None = None,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        lock_duration_ms: int = 30_000,
        stalled_interval_ms: int = 30_000,
        max_stalled_count: int = 1,
        worker_name: str | None = None,
        worker_loop: str = "fast",
        heartbeat_interval: float | None = DEFAULT_HEARTBEAT_INTERVAL,
    ) -> None:
        self.settings = (
            connection if isinstance(connection, RedisSettings) else RedisSettings.from_url(connection)
        )
        if runtime is not None and (registry or blueprints is not None):
            # A runtime of our own with the extra nodes and blueprints; the caller's is left as it is.
            runtime = FlowRuntime(
                registry={**runtime.registry, **(registry or {})},
                blueprints=runtime.blueprints,
                dependencies=runtime.dependencies,
                event_bus=runtime.event_bus,
                middleware=runtime.middleware,
                strict=runtime.strict,
                max_waves=runtime.max_waves,
            )
            if blueprints is not None:
                items = (
                    blueprints.items() if isinstance(blueprints, Mapping) else ((None, b) for b in blueprints)
                )
                for key, source in items:
                    runtime.register_blueprint(source, id=key)
        self.runtime = runtime or FlowRuntime(registry=registry, blueprints=blueprints)
        if worker_loop not in ("fast", "chained", "bullmq"):
            raise ValueError(f"worker_loop must be 'fast', 'chained' or 'bullmq', not {worker_loop!r}")
        self.worker_loop = worker_loop
        self.queue_name = queue_name
        self.concurrency = max(1, int(concurrency))
        self.run_options = run_options or RunOptions()
        self.max_payload_bytes = max_payload_bytes
        self._store_choice = coordination_store
        self.store: CoordinationStore | None = (
            None if isinstance(coordination_store, str) else coordination_store
        )
        self.redis: Redis | None = None
        self.worker: Worker | None = None
        self.batcher: FinishBatcher | None = None
        self._worker_opts: dict[str, Any] = {
            "concurrency": self.concurrency,
            "prefix": self.run_options.queue_prefix,
            "lockDuration": lock_duration_ms,
            "stalledInterval": stalled_interval_ms,
            "maxStalledCount": max_stalled_count,
            "autorun": False,
        }
        if worker_name:
            self._worker_opts["name"] = worker_name
        self._compiled_by_hash: dict[str, CompiledBlueprint] = {}
        self._compiled_by_id: dict[str, tuple[Blueprint, CompiledBlueprint]] = {}
        self._learned: dict[tuple[str, int], tuple[str, ...]] = {}
        self._refusals: dict[str, str | None] = {}
        self._signals: dict[str, set[CancellationSignal]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._closed = asyncio.Event() if _has_loop() else None
        self.jobs_processed = 0
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat: WorkerHeartbeat | None = None

    # ------------------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Connect and start consuming jobs (call inside a running event loop)."""
        if self.worker is not None:
            return
        loop = asyncio.get_running_loop()
        if self._closed is None:
            self._closed = asyncio.Event()
        self.redis = self.settings.client(max_connections=max(64, 2 * self.concurrency + 8))
        if self.store is None:
            self.store = _make_store(
                str(self._store_choice), self.redis, self.queue_name, self.run_options.queue_prefix
            )
        connection = {
            k: v for k, v in self.settings.redis_kwargs().items() if v is not None or k == "socket_timeout"
        }
        opts = {**self._worker_opts, "connection": connection}
        if self.worker_loop in ("fast", "chained"):
            if self.worker_loop == "fast":
                self.batcher = FinishBatcher(
                    self.redis,
                    self.store,
                    self.queue_name,
                    self.run_options.queue_prefix,
                    int(self._worker_opts["lockDuration"]),
                    # two halves of the slots: redis runs one half's call while this process
                    # runs the other half's nodes
                    send_at=(self.concurrency + 1) // 2,
                )
            self.worker = _ChainingWorker(self, self.queue_name, opts, batcher=self.batcher)
        else:
            self.worker = Worker(self.queue_name, self._process, opts)
        self._run_task = loop.create_task(self._run_worker())
        self._listener = loop.create_task(self._listen_for_cancellations())
        if self.heartbeat_interval:
            self.heartbeat = WorkerHeartbeat(
                self.redis,
                kind="flow",
                queue=self.queue_name,
                concurrency=self.concurrency,
                uses=lambda: self.runtime.registry,
                processed=lambda: self.jobs_processed,
                interval=self.heartbeat_interval,
            )
            self.heartbeat.start()
        logger.info("worker listening for jobs on queue %r", self.queue_name)

    async def _run_worker(self) -> None:
        assert self.worker is not None
        try:
            await self.worker.run()
        finally:
            if self._closed is not None:
                self._closed.set()

    async def run(self) -> None:
        """Start (if needed) and serve until :meth:`close`."""
        self.start()
        assert self._closed is not None
        await self._closed.wait()

    async def close(self, *, force: bool = False, timeout: float = 30.0) -> None:
        """Stop taking jobs; wait for the running ones to finish (up to ``timeout`` seconds, then
        stop them; their jobs go back to the queue when their locks expire)."""
        worker = self.worker
        if worker is not None:
            try:
                await asyncio.wait_for(worker.close(force), timeout)
            except (asyncio.TimeoutError, TimeoutError):
                logger.warning("worker did not finish its jobs within %.0f s; stopping them", timeout)
                for signals in self._signals.values():
                    for signal in signals:
                        signal.cancel("worker shutting down")
                with contextlib.suppress(Exception, asyncio.TimeoutError):
                    await asyncio.wait_for(worker.close(True), 5)
        for task in (self._listener, self._run_task):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        if self.heartbeat is not None:
            await self.heartbeat.stop()
        if self.batcher is not None:
            await self.batcher.close()
        if self.redis is not None:
            await self.redis.aclose()
        if self._closed is not None:
            self._closed.set()

    async def __aenter__(self) -> BullMQAdapter:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------------------ blueprints
    def compiled_for(self, blueprint_id: str) -> CompiledBlueprint | None:
        bp = self.runtime.get_blueprint(blueprint_id)
        if bp is None:
            return None
        hit = self._compiled_by_id.get(blueprint_id)
        if hit is not None and hit[0] is bp:
            return hit[1]
        compiled = self.runtime.compile(bp)
        self._compiled_by_id[blueprint_id] = (bp, compiled)
        self._compiled_by_hash[compiled.content_hash] = compiled
        return compiled

    async def _compiled_by_graph(self, graph_hash: str) -> CompiledBlueprint:
        hit = self._compiled_by_hash.get(graph_hash)
        if hit is not None:
            return hit
        assert self.redis is not None
        raw = await cast("Any", self.redis.hget(keys.graph_key(graph_hash), "bp"))
        if raw is None:
            raise BullflowError(f"the run's blueprint version {graph_hash[:12]} is not stored in Redis")
        compiled = self.runtime.compile(load_blueprint(raw))
        if compiled.content_hash != graph_hash:
            raise BullflowError(f"stored blueprint {graph_hash[:12]} does not match its content hash")
        self._compiled_by_hash[graph_hash] = compiled
        return compiled

    def implemented_uses(self) -> list[str]:
        """The ``uses`` keys this worker implements (built-ins included), sorted."""
        return sorted(self.runtime.registry)

    def refusal(self, compiled: CompiledBlueprint) -> str | None:
        """Why this worker refuses runs of ``compiled``: the nodes whose ``uses`` it does not
        implement (None when it implements them all)."""
        key = compiled.content_hash
        if key not in self._refusals:
            registry = self.runtime.registry
            missing = [(n.id, n.definition.uses) for n in compiled.nodes if n.definition.uses not in registry]
            self._refusals[key] = (
                None
                if not missing
                else f"Blueprint '{compiled.id}' uses "
                + ", ".join(f"'{uses}' (node '{node_id}')" for node_id, uses in missing)
                + ", which this worker does not implement; the run is refused"
            )
        return self._refusals[key]

    # ------------------------------------------------------------------------- cancellation
    async def _listen_for_cancellations(self) -> None:
        assert self.redis is not None
        await listen_for_ids(self.redis, keys.CANCEL_CHANNEL, self._cancel_run)

    def _cancel_run(self, run_id: str) -> None:
        for signal in list(self._signals.get(run_id, ())):
            signal.cancel("cancelled")

    # ------------------------------------------------------------------------------ processing
    async def _process(self, job: Any, token: str) -> None:
        """The processor of the stock bullmq loop: run the node, then commit it."""
        commit = await self.job_commit(job)
        if commit is not None:
            assert self.store is not None
            result = await self.store.complete_node(commit)
            logger.debug(
                "run %s node %d: %s, run %s", commit.run_id, commit.index, commit.mode, result.status
            )

    async def job_commit(self, job: Any) -> NodeCommit | None:
        """Run the node of one job; returns the commit to apply (None: nothing to commit). A
        failed attempt that the queue should retry raises."""
        try:
            data = job.data if isinstance(job.data, Mapping) else {}
            run_id = data.get("runId")
            node_id = data.get("nodeId")
            if not isinstance(run_id, str) or not run_id or not isinstance(node_id, str):
                logger.error(
                    "job %s has no runId/nodeId (data %r); acknowledged without running", job.id, data
                )
                return None
            return await self._process_node(job, run_id, node_id, data.get("blueprintId"), data)
        finally:
            self.jobs_processed += 1

    async def _process_node(
        self, job: Any, run_id: str, node_id: str, blueprint_id: Any, data: Mapping[str, Any]
    ) -> NodeCommit | None:
        redis = self.redis
        store = self.store
        assert redis is not None and store is not None
        iteration = _int(data.get("iteration"))
        dyn_index = data.get("index")
        local = self.compiled_for(blueprint_id) if isinstance(blueprint_id, str) else None
        compiled = local
        if isinstance(dyn_index, int):
            index: int | None = dyn_index
        else:
            index = compiled.index.get(node_id) if compiled is not None else None

        preload = getattr(job, "bullflow_read", None)
        reply = self._preloaded(run_id, compiled, index, preload) if preload is not None else None
        if reply is None:
            reply = await self._read(run_id, compiled, index)
        if reply["st"] is None:
            if not await self._adopt(run_id, blueprint_id, local):
                return None
            reply = await self._read(run_id, compiled, index)
        graph_hash = reply["g"]
        if compiled is None or graph_hash != compiled.content_hash:
            try:
                compiled = await self._compiled_by_graph(graph_hash)
            except BullflowError as err:
                logger.error("run %s: %s; job %s acknowledged", run_id, err, job.id)
                return None
            if not isinstance(dyn_index, int):
                index = compiled.index.get(node_id)
            reply = await self._read(run_id, compiled, index)
        if reply["st"] != "running":
            logger.debug("run %s is %s; job %s acknowledged without running", run_id, reply["st"], job.id)
            return None
        if index is None:
            logger.error(
                "run %s: blueprint %r has no node %r; job %s acknowledged",
                run_id,
                compiled.id,
                node_id,
                job.id,
            )
            return None
        if str(job.id) != keys.job_id(run_id, node_id, iteration) and not (
            iteration == 0 and index in compiled.graph.start
        ):
            # Not the job the run enqueued for this node: only a client's own start jobs (any
            # ids) are taken; e.g. a client's job for a fallback-only node never runs it.
            logger.info(
                "run %s: job %s is not this run's job for node %s; acknowledged", run_id, job.id, node_id
            )
            return None
        if reply["s"] != _READY or reply["it"] != iteration:
            logger.debug(
                "run %s node %s iteration %d is settled already; job %s acknowledged",
                run_id,
                node_id,
                iteration,
                job.id,
            )
            return None
        refusal = self.refusal(compiled)
        if refusal is not None:
            # A blueprint this worker cannot run in full is refused before any of it runs here.
            await store.fail_node(
                run_id, compiled.content_hash, index, iteration, refusal, attempt=1, started_at=_started_ms()
            )
            raise UnrecoverableError(refusal)

        view: RedisContext = reply["view"]
        if reply["d"] is not None:
            record = decode_value(reply["d"], f"d:{index}")
            node = dynamic_node(
                index, _node_definition(record["def"]), [(-1, int(t)) for t in record["targets"]]
            )
        else:
            node = compiled.nodes[index]
        nodes = _Nodes(compiled.nodes, node if reply["d"] is not None else None)
        opts = job.opts if isinstance(job.opts, Mapping) else {}
        attempts = opts.get("attempts")
        attempts_made = int(getattr(job, "attemptsMade", 0) or 0)
        limit = int(attempts) if isinstance(attempts, int) and attempts > 0 else None
        last = limit is None or attempts_made + 1 >= limit
        graph = compiled.content_hash
        task = _TaskFacts(attempts_made + 1, _started_ms())

        try:
            if reply["rs"] is not None:
                outcome = await self._resumed_outcome(run_id, compiled, node, view, reply["rs"])
            else:
                node_input = await self._node_input(node, view, reply["t"])
                signal = CancellationSignal()
                job_run = _JobRun(
                    self.runtime,
                    compiled,
                    run_id,
                    view,
                    node_input,
                    nodes,
                    signal,
                    attempt=attempts_made + 1,
                    attempts=limit,
                    last_attempt=last,
                    fallback_origin=reply["ff"],
                )
                self._signals.setdefault(run_id, set()).add(signal)
                try:
                    outcome = await job_run._execute(index)
                finally:
                    signals = self._signals.get(run_id)
                    if signals is not None:
                        signals.discard(signal)
                        if not signals:
                            del self._signals[run_id]
            commit = await self._commit_for(
                run_id, compiled, nodes, node, iteration, view, outcome, last, reply["ff"], task
            )
        except CodecError as err:
            message = f"Node '{node.id}': {err}"
            await store.fail_node(
                run_id, graph, index, iteration, message, attempt=task.attempt, started_at=task.started_at
            )
            raise UnrecoverableError(message) from err
        if commit is None:
            return None
        if isinstance(commit, BaseException):
            raise commit
        self._learn(graph, index, view)
        return commit

    async def _commit_for(
        self,
        run_id: str,
        compiled: CompiledBlueprint,
        nodes: _Nodes,
        node: CompiledNode,
        iteration: int,
        view: RedisContext,
        outcome: _Outcome,
        last: bool,
        origin: int | None,
        task: _TaskFacts,
    ) -> NodeCommit | BaseException | None:
        """The commit for an execution's outcome; an exception to raise (a retry); or None
        (nothing to commit: the node failed for good and failNode ran, or it was cancelled)."""
        store = self.store
        assert store is not None
        graph = compiled.content_hash
        kind = outcome.kind
        if kind == "cancelled":
            return None
        if kind in ("failed", "fallback"):
            error = outcome.error
            assert error is not None
            if not last and not error.is_fatal:
                return cast("BaseException", error)  # the queue retries it (with the node's backoff)
            if kind == "failed":
                await store.fail_node(
                    run_id,
                    graph,
                    node.index,
                    iteration,
                    str(error),
                    attempt=task.attempt,
                    started_at=task.started_at,
                    detail=_error_detail(error),
                )
                logger.info("run %s: node %r failed: %s", run_id, node.id, error.cause or error)
                return cast("BaseException", UnrecoverableError(str(error)))
            writes: list[tuple[str, str | None]] = [("_outputs." + node.id, "null"), (node.id, "null")]
            return NodeCommit(
                run_id,
                graph,
                node.index,
                iteration,
                mode="fallback",
                writes=writes,
                attempt=task.attempt,
                started_at=task.started_at,
                error=_error_detail(error),
            )

        result = outcome.result
        assert result is not None
        output = result.output
        await view.set("_outputs." + node.id, output)
        await view.set(node.id, output)
        commit = NodeCommit(
            run_id,
            graph,
            node.index,
            iteration,
            writes=self._encoded_writes(node, view),
            attempt=task.attempt,
            started_at=task.started_at,
        )
        if outcome.awaiting is not None:
            details = outcome.awaiting
            if details.get("reason") == "timer" and isinstance(details.get("wakeUpAt"), str):
                commit.mode = "sleep"
                commit.sleep_ms = max(1, _ms_until(details["wakeUpAt"]))
            else:
                commit.mode = "await"
                commit.awaiting = details
            return commit

        edges = node.out_edges
        if not node.has_conditions and not node.inherits_edges and all(e.transform is None for e in edges):
            # No expression to evaluate: action-first edge choice, the output as every input.
            taken = [e for e in edges if e.action == result.action] if result.action is not None else []
            if not taken:
                taken = [e for e in edges if e.action is None]
            commit.taken = None if len(taken) == len(edges) else [e.index for e in taken]
            if taken:
                encoded = encode_value(output, "_outputs." + node.id).decode()
                commit.inputs = [
                    (e.target, "_inputs." + nodes[e.target].id, encoded, False)
                    for e in taken
                    if e.target < len(nodes)
                ]
            if result.dynamic_nodes:
                commit.dynamic = self._dynamic_payload(compiled, result)
            return commit

        job_run = _JobRun(
            self.runtime,
            compiled,
            run_id,
            view,
            None,
            nodes,
            CancellationSignal(),
            attempt=1,
            attempts=1,
            last_attempt=True,
            fallback_origin=origin,
        )

        def decide(scope: Mapping[str, Any]) -> tuple[list[Any], list[tuple[int, str, Any, bool]], list[Any]]:
            job_run.data = cast("dict[str, Any]", scope)
            job_run.errors = []
            job_run._events.clear()
            taken = job_run._select_edges(node, result)
            inputs = []
            for edge in taken:
                if edge.target >= len(nodes):
                    continue  # a node added while running takes its input from its definition
                target = nodes[edge.target]
                value = job_run._edge_input(node, edge, target, result, scope)
                inputs.append((edge.target, "_inputs." + target.id, value, edge.transform is not None))
            return taken, inputs, list(job_run.errors)

        taken, inputs, errors = await evaluate_lazily(view, decide)
        commit.taken = None if len(taken) == len(node.out_edges) else [e.index for e in taken]
        commit.inputs = [(t, f, encode_value(v, f).decode(), tr) for t, f, v, tr in inputs]
        commit.errors = [{"nodeId": e.node_id or node.id, "message": e.message} for e in errors]
        if result.dynamic_nodes:
            commit.dynamic = self._dynamic_payload(compiled, result)
        return commit

    def _encoded_writes(self, node: CompiledNode, view: RedisContext) -> list[tuple[str, str | None]]:
        from .context import DELETED

        writes: list[tuple[str, str | None]] = []
        size = 0
        for key, value in view.pending_writes().items():
            if value is DELETED:
                writes.append((key, None))
                continue
            try:
                text = encode_value(value, key).decode()
            except CodecError as err:
                raise CodecError(f"returned or wrote a value JSON cannot hold: {err}", key=key) from err
            size += len(text)
            writes.append((key, text))
        if size > self.max_payload_bytes:
            raise CodecError(
                f"wrote {size:,} bytes of context, over the limit of {self.max_payload_bytes:,} (max_payload_bytes)",
                key="_outputs." + node.id,
            )
        return writes

    @staticmethod
    def _dynamic_payload(compiled: CompiledBlueprint, result: NodeResult) -> dict[str, Any]:
        gather, workers, continuation = split_dynamic_nodes(result, compiled.index)
        payload: dict[str, Any] = {
            "gather": -1 if gather is None else gather,
            "workers": [[d.id, encode_value(d.to_dict()).decode()] for d in workers],
        }
        if continuation:
            payload["continuation"] = [continuation[0].id, encode_value(continuation[0].to_dict()).decode()]
        return payload

    async def _resumed_outcome(
        self, run_id: str, compiled: CompiledBlueprint, node: CompiledNode, view: RedisContext, raw: bytes
    ) -> _Outcome:
        """A resumed wait node or a woken sleep node completes with the resume payload."""
        payload = decode_value(raw, f"rs:{node.index}")
        payload = payload if isinstance(payload, Mapping) else {}
        action = payload.get("action")
        if "output" in payload:
            output = payload["output"]
        else:
            output = await view.get("_outputs." + node.id)
        subflow_key = f"_subflowState.{node.id}"
        state = await view.get(subflow_key)
        if state is not None:
            from .builtins import SubflowStillAwaiting, resume_subflow

            shim = _JobRun(
                self.runtime,
                compiled,
                run_id,
                view,
                None,
                _Nodes(compiled.nodes, None),
                CancellationSignal(),
                attempt=1,
                attempts=1,
                last_attempt=True,
                fallback_origin=None,
            )
            shim.data = {}
            try:
                output = await resume_subflow(shim, node, state, payload.get("output"), action)
            except SubflowStillAwaiting as still:
                await view.set(subflow_key, still.state)
                return _Outcome("success", NodeResult(output=None), None, view, {"reason": "subflow"})
            except NodeError as err:
                return _Outcome("failed", error=err, view=view)
            await view.delete(subflow_key)
            for key, value in shim.data.items():
                await view.set(key, value)
            action = None
        return _Outcome(
            "success",
            NodeResult(output=output, action=action if isinstance(action, str) else None),
            None,
            view,
        )

    async def _node_input(self, node: CompiledNode, view: RedisContext, transformed: bool) -> Any:
        d = node.definition
        inputs = d.inputs
        if inputs is None or transformed:
            return await view.get("_inputs." + d.id)
        if isinstance(inputs, str):
            key = inputs
            return await evaluate_lazily(view, lambda scope: _lookup(scope, key))
        mapping = dict(inputs)
        return await evaluate_lazily(
            view, lambda scope: {name: _lookup(scope, k) for name, k in mapping.items()}
        )

    async def finish_job(
        self, commit: NodeCommit | None, keys_: list[Any], args: list[Any], finish: Any
    ) -> Any:
        """Commit (if any) and bullmq's ``moveToFinished`` in one pipelined round trip, in that
        order; returns ``moveToFinished``'s reply (decoded as bullmq's own connection would)."""
        return _decoded(await self._commit_then(commit, finish.sha, finish.script, len(keys_), keys_, args))

    async def _commit_then(
        self,
        commit: NodeCommit | None,
        sha: str,
        source: str,
        num_keys: int,
        keys_: list[Any],
        args: list[Any],
    ) -> Any:
        """``completeNode`` (if a commit is given) then the script ``sha``, pipelined in that order
        in one round trip; returns the second script's raw reply. A NOSCRIPT is loaded and run
        again; the commit, run again after the job was acknowledged, is still the same commit (the
        node is ready for that iteration until it lands). A client-side store commits on its own
        first."""
        store = self.store
        client = self.redis
        assert client is not None and store is not None
        lua = store if isinstance(store, RedisCoordinationStore) else None
        if commit is not None and lua is None:
            await store.complete_node(commit)
            commit = None
        pipe = client.pipeline(transaction=False)
        if commit is not None and lua is not None:
            lua.queue_complete_node(pipe, commit)
        pipe.evalsha(sha, num_keys, *keys_, *args)
        replies = await pipe.execute(raise_on_error=False)
        committed, finished = (replies[0], replies[1]) if commit is not None else (None, replies[0])
        if isinstance(finished, Exception) and not isinstance(finished, NoScriptError):
            raise finished
        if commit is not None and lua is not None and lua.scripts.is_missing(committed):
            # The commit goes first, as in the pipeline: a second script that already ran took
            # no next job for it, so it must wake a waiting worker (no ``fetching``).
            if not isinstance(finished, NoScriptError):
                commit.fetching = False
            await store.complete_node(commit)
            committed = None
        if isinstance(finished, NoScriptError):
            await cast("Any", client.script_load(source))
            finished = await cast("Any", client.evalsha(sha, num_keys, *keys_, *args))
        if commit is not None:
            if isinstance(committed, Exception):
                logger.error(
                    "run %s: committing node %d failed: %s; the reconciler will run it again",
                    commit.run_id,
                    commit.index,
                    committed,
                )
        return finished

    # ------------------------------------------------------------------------------ reading
    def _preloaded(
        self, run_id: str, compiled: CompiledBlueprint | None, index: int | None, preload: Any
    ) -> dict[str, Any] | None:
        """The reply of :meth:`_read` from what ``finishJobs`` read along with the job, when it
        is for the graph and node this worker resolved and the node needs no other field."""
        run_fields, lua_index, node_fields, node_input = preload
        if not run_fields or compiled is None or index is None or lua_index is False:
            return None
        st, graph, bp = (_text_or_none(v) for v in run_fields)
        if graph != compiled.content_hash or int(lua_index) != index or not node_fields:
            return None
        field = "_inputs." + (compiled.nodes[index].id if index < len(compiled.nodes) else "")
        learned = self._learned.get((graph, index))
        if index >= len(compiled.nodes) or (learned is not None and learned != (field,)):
            return None
        assert self.redis is not None
        view = RedisContext(self.redis, run_id)
        view.absorb([field], [node_input if node_input is not False else None])
        s_, it, t, ff, rs, d = node_fields
        return {
            "st": st,
            "g": graph,
            "bp": bp,
            "view": view,
            "s": _int(s_),
            "it": _int(it),
            "t": bool(t),
            "ff": None if not ff else int(ff),
            "rs": rs or None,
            "d": d or None,
        }

    async def _read(
        self, run_id: str, compiled: CompiledBlueprint | None, index: int | None
    ) -> dict[str, Any]:
        """One pipelined round trip: the run's fields for the node and the state fields the node
        is known to read."""
        redis = self.redis
        assert redis is not None
        view = RedisContext(redis, run_id)
        fields: list[str] = list(_RUN_FIELDS)
        if index is not None:
            fields += [f"s:{index}", f"it:{index}", f"t:{index}", f"ff:{index}", f"rs:{index}", f"d:{index}"]
        prefetch: list[str] = []
        if compiled is not None and index is not None:
            learned = self._learned.get((compiled.content_hash, index))
            if learned is not None:
                prefetch = list(learned)
            elif index < len(compiled.nodes):
                prefetch = ["_inputs." + compiled.nodes[index].id]
        pipe = redis.pipeline(transaction=False)
        pipe.hmget(keys.run_key(run_id), fields)
        if prefetch:
            pipe.hmget(keys.state_key(run_id), prefetch)
        replies = await pipe.execute()
        values = [v.decode() if isinstance(v, bytes) else v for v in replies[0]]
        if prefetch:
            view.absorb(prefetch, replies[1])
        reply: dict[str, Any] = {"st": values[0], "g": values[1], "bp": values[2], "view": view}
        if index is not None:
            reply.update(
                s=_int(values[3]),
                it=_int(values[4]),
                t=values[5] is not None,
                ff=None if values[6] is None else int(values[6]),
                rs=replies[0][7],
                d=replies[0][8],
            )
        else:
            reply.update(s=0, it=0, t=False, ff=None, rs=None, d=None)
        return reply

    def _learn(self, graph_hash: str, index: int, view: RedisContext) -> None:
        key = (graph_hash, index)
        if key in self._learned:
            return
        fields = [*view.loaded.keys(), *view._absent]
        if len(fields) <= _MAX_LEARNED_KEYS:
            self._learned[key] = tuple(dict.fromkeys(fields))

    async def _adopt(self, run_id: str, blueprint_id: Any, compiled: CompiledBlueprint | None) -> bool:
        """A job for a run without a coordination hash: a run a Flowcraft-style client started
        (context written, start jobs enqueued) is adopted; anything else fails with a reason."""
        redis = self.redis
        store = self.store
        assert redis is not None and store is not None
        if not await cast("Any", redis.exists(keys.state_key(run_id))):
            await self._publish_failure(
                run_id,
                f"Run '{run_id}' has no state ({keys.state_key(run_id)} does not exist); its job was dropped.",
            )
            return False
        if compiled is None:
            await self._publish_failure(
                run_id, f"Blueprint with ID '{blueprint_id}' not found in the worker's runtime registry."
            )
            return False
        await store.start_run(run_id, compiled, (), self.run_options, adopt=True)
        return True

    async def _publish_failure(self, run_id: str, reason: str) -> None:
        """Fail a run that never got a coordination hash (so no script can): the status is
        written only if none is there (a final status is never overwritten)."""
        redis = self.redis
        assert redis is not None
        text = encode_value({"status": "failed", "reason": reason}).decode()
        ttl = self.run_options.state_ttl_seconds
        written = await cast(
            "Any", redis.set(keys.status_key(run_id), text, nx=True, ex=ttl if ttl > 0 else None)
        )
        if written:
            # Listed and logged like any run (bullflow.tracking), and expiring with its status.
            pipe = redis.pipeline(transaction=True)
            pipe.zadd(keys.RUN_INDEX_KEY, {run_id: int(time.time() * 1000)}, nx=True)
            pipe.xadd(keys.run_log_key(run_id), {"type": "run-failed", "node": "", "msg": reason})
            if ttl > 0:
                pipe.expire(keys.run_log_key(run_id), ttl)
            pipe.publish(keys.status_channel(run_id), text)
            await pipe.execute()
        logger.error("run %s failed: %s", run_id, reason)


@dataclass(frozen=True, slots=True)
class _TaskFacts:
    """What a commit reports of the execution: its attempt number and start (ms)."""

    attempt: int
    started_at: int


def _error_detail(error: Any) -> str:
    """The error with its cause (``Node 'X' execution failed: <cause>``), for the task record."""
    text = str(error)
    cause = getattr(error, "cause", None)
    if cause is not None and str(cause) and str(cause) not in text:
        return f"{text}: {type(cause).__name__}: {cause}"
    return text


def _started_ms() -> int:
    """Now, in ms: when the worker starts running a node (bullmq's ``processedOn`` is not used:
    the Python worker stamps it with a time taken before it waited for the job)."""
    return int(time.time() * 1000)


def _make_store(choice: str, redis: Redis, queue_name: str, queue_prefix: str) -> CoordinationStore:
    if choice == "lua":
        return RedisCoordinationStore(redis, queue_name, queue_prefix)
    if choice == "python":
        from .python_coordination import PythonCoordinationStore

        return PythonCoordinationStore(redis, queue_name, queue_prefix)
    raise ValueError(f"coordination_store must be 'lua', 'python' or a store instance, not {choice!r}")


def _keep_jobs(option: Any) -> tuple[int, str]:
    """bullmq's ``removeOnComplete`` as (jobs to keep: -1 all, 0 none, n newest; max age or "")."""
    if option is True:
        return 0, ""
    if isinstance(option, int) and not isinstance(option, bool):
        return option, ""
    if isinstance(option, Mapping):
        count = option.get("count")
        age = option.get("age")
        return (int(count) if isinstance(count, int) else -1), (
            str(int(age)) if isinstance(age, (int, float)) else ""
        )
    return -1, ""


def _text_or_none(value: Any) -> str | None:
    if value is None or value is False:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _decoded(value: Any) -> Any:
    """A reply with bytes decoded to str (bullmq's clients use ``decode_responses=True``)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list):
        return [_decoded(v) for v in value]
    return value


def _int(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bytes):
        value = value.decode()
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _ms_until(iso: str) -> int:
    wake = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return int((wake - datetime.now(timezone.utc)).total_seconds() * 1000)


def _has_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class _ChainingWorker(Worker):  # type: ignore[misc]
    """bullmq's ``Worker`` that finishes a job and fetches the next one in the same script call
    (Node's ``moveToFinished`` with ``fetchNext``; the stock Python worker makes two calls). With
    a ``batcher`` (the fast loop) the node's commit, the finish and the fetch go in the group's
    ``finishJobs`` call (:mod:`bullflow.job_batch`); without one (the chained loop) the
    ``completeNode`` commit is pipelined in front of bullmq's ``moveToFinished`` and runs first --
    should it fail with NOSCRIPT (a restarted server) it is loaded and run again (before the finish
    when that failed too; otherwise after it: the node is still ready for that iteration, so the
    late commit is the same commit). A slot without a job takes one in a group's ``finishJobs``
    call too (a job-less entry) before it falls back to bullmq's ``moveToActive``. A closing worker
    takes no new job."""

    def __init__(
        self, adapter: BullMQAdapter, name: str, opts: dict[str, Any], *, batcher: FinishBatcher | None
    ) -> None:
        super().__init__(name, adapter.job_commit, opts)
        self.adapter = adapter
        self.batcher = batcher

    async def moveToActive(self, token: str) -> Any:
        # bullmq's loop may start waiting for a job just after close() cancelled the wait; when a
        # job arrives it would take it and then stop without running it (the job stays locked
        # until its lock expires). A closing worker leaves it in the queue for another worker.
        if self.closing:
            return None
        if self.batcher is not None:
            # the fast loop takes it in its group's finishJobs call, with the node's fields
            # read along; bullmq's script when that took none (it sets the worker drained)
            taken = await self.batcher.take(token)
            if taken is not None:
                following = await self._next_from(taken, token, emit=False)
                if following is not None:
                    return following
        return await super().moveToActive(token)

    async def processJob(self, job: Any, token: str) -> None:
        while job is not None:
            job = await self._process_one(job, token)

    async def _process_one(self, job: Any, token: str) -> Any:
        if "removeOnComplete" not in job.opts and "removeOnComplete" in self.opts:
            job.opts["removeOnComplete"] = self.opts["removeOnComplete"]
        if "removeOnFail" not in job.opts and "removeOnFail" in self.opts:
            job.opts["removeOnFail"] = self.opts["removeOnFail"]
        self.jobs.add((job, token))
        self.lockManager.track_job(job.id, token, int(time.time() * 1000), should_create_controller=False)
        try:
            if job.deferredFailure:
                failure = UnrecoverableError(job.deferredFailure)
                await job.moveToFailed(failure, token)
                self.emit("failed", job, failure)
                return None
            commit = await self.adapter.job_commit(job)
            if self.forceClosing:
                return None
            fetch = not self.closing and not self.paused
            if commit is not None and fetch:
                commit.fetching = True  # this slot takes the next waiting job in the same round trip
            if self.batcher is not None:
                keep, age = _keep_jobs(job.opts.get("removeOnComplete", False))
                reply = await self.batcher.finish(commit, str(job.id), token, keep, age, fetch)
                if commit is not None:
                    log_commit_reply(commit, reply.committed)
                if reply.code != ScriptCode.USE_BULLMQ:
                    job.attemptsMade = job.attemptsMade + 1
                    self.emit("completed", job, None)
                    return await self._next_from(reply.taken, token) if fetch else None
                commit = None  # applied; bullmq's script finishes this job (and takes the next one)
            keys_, args = self.scripts.moveToCompletedArgs(
                job, None, job.opts.get("removeOnComplete", False), token, fetch
            )
            raw = await self.adapter.finish_job(commit, keys_, args, self.scripts.commands["moveToFinished"])
            if isinstance(raw, int) and raw < 0:
                raise self.scripts.finishedErrors(
                    {"code": raw, "jobId": job.id, "command": "moveToFinished", "state": "active"}
                )
            job.attemptsMade = job.attemptsMade + 1
            self.emit("completed", job, None)
            if not fetch or not raw:
                return None
            job_data, job_id, limit_until, delay_until = raw2NextJobData(raw)
            following = await self.nextJobFromJobData(
                job_data, job_id, limit_until or 0, delay_until or 0, token
            )
            if following is not None:
                self.emit("active", following, "waiting")
            return following
        except (DelayedError, WaitingChildrenError):
            return None
        except Exception as err:
            try:
                if not self.forceClosing:
                    await job.moveToFailed(err, token)
                self.emit("failed", job, err)
            except Exception as failure:
                self.emit("error", failure, job)
            return None
        finally:
            self.jobs.discard((job, token))
            self.lockManager.untrack_job(job.id)

    async def _next_from(self, taken: Any, token: str, *, emit: bool = True) -> Any:
        """The job ``finishJobs`` took (with the read it made for it), or None. A plain job becomes
        a :class:`_LightJob`; one a job scheduler made goes through bullmq's own bookkeeping.
        ``emit``: emit "active" (bullmq's ``getNextJob`` does for what ``moveToActive`` returns)."""
        if not taken:
            return None
        flat, job_id, run_fields, index, node_fields, node_input = taken
        raw = {_decoded(flat[k]): _decoded(flat[k + 1]) for k in range(0, len(flat), 2)}
        job_id = _decoded(job_id)
        following: Any
        if raw.get("rjk"):
            following = await self.nextJobFromJobData(raw, job_id, 0, 0, token)
            if following is None:
                return None
        else:
            self.drained = False
            following = _LightJob(self, raw, job_id, token)
        following.bullflow_read = (run_fields, index, node_fields, node_input)
        if emit:
            self.emit("active", following, "waiting")
        return following


class _LightJob:
    """A job the fast loop took: what processing reads (id, data, opts, attempts), without building
    bullmq's ``Job`` (two JSON parses and forty attributes per node); a failure builds the real one
    to let bullmq fail or retry it."""

    __slots__ = (
        "_raw",
        "_worker",
        "attemptsMade",
        "bullflow_read",
        "data",
        "deferredFailure",
        "id",
        "name",
        "opts",
        "token",
    )

    def __init__(self, worker: Any, raw: dict[str, Any], job_id: str, token: str) -> None:
        self._worker = worker
        self._raw = raw
        self.id = job_id
        self.name = raw.get("name")
        self.token = token
        try:
            self.data = orjson.loads(raw.get("data") or "{}")
            self.opts = optsFromJSON(orjson.loads(raw.get("opts") or "{}"))
        except orjson.JSONDecodeError:
            self.data, self.opts = {}, {}
        self.attemptsMade = int(raw.get("atm") or 0)
        self.deferredFailure = raw.get("defa")
        self.bullflow_read: Any = None

    async def moveToFailed(self, err: Exception, token: str) -> None:
        job = Job.fromJSON(self._worker, self._raw, self.id)
        job.token = token
        await job.moveToFailed(err, token)
