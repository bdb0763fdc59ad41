"""Run coordination in Redis: starting runs, committing node executions, failing, cancelling and
resuming them, and what the reconciler needs. :class:`RedisCoordinationStore` does each of these
as one Lua script (``lua/``), so a worker that dies at any instant leaves a run either before or
after a commit, never in between. :class:`bullflow.python_coordination.PythonCoordinationStore`
does the same from the client with WATCH/MULTI (the benchmarks compare the two).

Both work on the same keys (``keys.py``) and fields (``lua/README.md``), so a run can be driven by
either.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from redis.asyncio import Redis

from . import keys
from ._impl import encode_value
from .compile import CompiledBlueprint
from .exceptions import ScriptError
from .scripts import ScriptCode, ScriptRunner

__all__ = [
    "CommitResult",
    "CoordinationStore",
    "NodeCommit",
    "ReadyNode",
    "RedisCoordinationStore",
    "RunOptions",
    "graph_fields",
    "job_options_fragment",
    "start_run_call",
]

logger = logging.getLogger(__name__)

_START_CHUNK = 256  # startRun calls per pipeline (RedisCoordinationStore.start_runs)
_DEFAULT_JOB_OPTIONS = {"removeOnComplete": {"age": 604800}, "removeOnFail": {"age": 1296000}}


@dataclass(frozen=True, slots=True)
class RunOptions:
    """Settings a run is started with (stored in its coordination hash)."""

    queue_prefix: str = keys.DEFAULT_QUEUE_PREFIX
    state_ttl_seconds: int = 86400  # 0 keeps finished runs
    max_waves: int = 10_000
    job_options: dict[str, Any] = field(default_factory=lambda: dict(_DEFAULT_JOB_OPTIONS))


@dataclass(slots=True)
class NodeCommit:
    """One node execution to commit (``completeNode``)."""

    run_id: str
    graph_hash: str
    index: int
    iteration: int
    mode: str = "complete"  # complete | fallback | await | sleep
    taken: list[int] | None = None  # None: every outgoing edge
    writes: list[tuple[str, str | None]] = field(default_factory=list)  # (field, JSON text | None = delete)
    inputs: list[tuple[int, str, str, bool]] = field(
        default_factory=list
    )  # (target, field, JSON, transformed)
    errors: list[dict[str, str]] = field(default_factory=list)
    awaiting: dict[str, Any] | None = None
    sleep_ms: int = 0
    dynamic: dict[str, Any] | None = None  # {gather, workers: [[id, defJSON]], continuation}
    fetching: bool = False  # the committing worker takes the next waiting job right after
    attempt: int = 0  # the execution's attempt number (0 = unknown); task record and metrics
    started_at: int = 0  # when the execution started, ms (0 = unknown)
    error: str = ""  # mode "fallback": the error the node failed with


@dataclass(frozen=True, slots=True)
class CommitResult:
    code: ScriptCode
    enqueued: int
    status: str | None

    @property
    def committed(self) -> bool:
        return self.code == ScriptCode.STORED


@dataclass(frozen=True, slots=True)
class ReadyNode:
    index: int
    node_id: str
    iteration: int
    job_id: str
    state: str  # queued | requeued | failed
    failed_reason: str


class CoordinationStore(Protocol):
    """What the adapter, the client and the reconciler need from a coordination path."""

    async def store_graph(self, compiled: CompiledBlueprint) -> bool: ...

    async def start_run(
        self,
        run_id: str,
        compiled: CompiledBlueprint,
        context: Sequence[tuple[str, str]],
        options: RunOptions,
        *,
        adopt: bool = False,
    ) -> CommitResult: ...

    async def complete_node(self, commit: NodeCommit) -> CommitResult: ...

    async def fail_node(
        self,
        run_id: str,
        graph_hash: str,
        index: int,
        iteration: int,
        message: str,
        *,
        attempt: int = 0,
        started_at: int = 0,
        detail: str = "",
    ) -> CommitResult: ...

    async def cancel_run(self, run_id: str, reason: str) -> CommitResult: ...

    async def resume_node(
        self, run_id: str, graph_hash: str, node_id: str | None, payload: dict[str, Any]
    ) -> tuple[ScriptCode, str | None, str | None]: ...

    async def ready_nodes(self, run_id: str, graph_hash: str) -> tuple[ScriptCode, list[ReadyNode]]: ...

    async def acquire_lock(self, name: str, token: str, ttl_ms: int) -> bool: ...


def _json(value: Any) -> str:
    return encode_value(value).decode()


def job_options_fragment(options: dict[str, Any]) -> str:
    """Job options as the JSON fragment the scripts append to every job's ``opts``
    (``,"removeOnComplete":{...}``)."""
    text = _json(options)
    return "" if text == "{}" else "," + text[1:-1]


def start_run_call(
    run_id: str,
    compiled: CompiledBlueprint,
    context: Sequence[tuple[str, str]],
    options: RunOptions,
    queue_name: str = keys.DEFAULT_QUEUE,
    queue_prefix: str = keys.DEFAULT_QUEUE_PREFIX,
    *,
    adopt: bool = False,
) -> tuple[list[str], list[Any]]:
    """The KEYS and ARGV of ``startRun`` (lua/startRun-11.lua) for a run: what
    :meth:`RedisCoordinationStore.start_run` sends, for callers that run the script themselves
    (e.g. the synchronous load-test client). ``context`` holds (field, JSON text) pairs."""
    metadata = compiled.blueprint.metadata
    version = metadata.get("version") if metadata else None
    args: list[Any] = [
        run_id,
        compiled.id,
        keys.queue_key_prefix(queue_name, queue_prefix),
        keys.status_channel(run_id),
        int(options.state_ttl_seconds),
        int(options.max_waves),
        job_options_fragment(options.job_options)[1:],  # stored without the comma (see startRun)
        "1" if adopt else "0",
        _json(version),
    ]
    for name, value in context:
        args += [name, value]
    qk = keys.queue_keys(queue_name, queue_prefix)
    run_keys = [
        keys.state_key(run_id),
        keys.run_key(run_id),
        keys.graph_key(compiled.content_hash),
        keys.status_key(run_id),
        *(qk[name] for name in ("wait", "meta", "id", "active", "events", "marker", "delayed")),
    ]
    return run_keys, args


def _node_job_options(compiled: CompiledBlueprint, i: int) -> str:
    node = compiled.nodes[i]
    if node.max_attempts <= 1:
        return ""
    opts: dict[str, Any] = {"attempts": node.max_attempts}
    delay = round(node.retry_delay * 1000)
    if delay > 0:
        opts["backoff"] = {"type": "exponential" if node.exponential_backoff else "fixed", "delay": delay}
    return job_options_fragment(opts)


def graph_fields(compiled: CompiledBlueprint) -> list[str | bytes]:
    """HSET arguments of ``bullflow:graph:<hash>``: the core's Lua encoding plus the blueprint
    JSON, node ids both ways, and each node's queue retry options."""
    fields: list[str | bytes] = list(compiled.graph.lua_encoding())
    fields += ["bp", _json(compiled.blueprint.to_dict())]
    for node in compiled.nodes:
        fields += [f"id:{node.index}", node.id, f"ix:{node.id}", str(node.index)]
        opts = _node_job_options(compiled, node.index)
        if opts:
            fields += [f"o:{node.index}", opts]
    return fields


def _code(value: Any) -> ScriptCode:
    return ScriptCode(int(value))


def _text(value: Any) -> str | None:
    if value is None or value is False:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisCoordinationStore:
    """Coordination by Lua script: one script call (FCALL or EVALSHA) per operation."""

    def __init__(
        self,
        redis: Redis,
        queue_name: str = keys.DEFAULT_QUEUE,
        queue_prefix: str = keys.DEFAULT_QUEUE_PREFIX,
        *,
        functions: bool = True,
    ) -> None:
        self.redis = redis
        self.scripts = ScriptRunner(redis, functions=functions)  # (functions=False: EVALSHA only)
        self.queue_name = queue_name
        self.queue_prefix = queue_prefix
        qk = keys.queue_keys(queue_name, queue_prefix)
        self._queue = [qk[name] for name in ("wait", "meta", "id", "active", "events", "marker", "delayed")]
        self._finished = [qk["completed"], qk["failed"]]
        self._stored: set[str] = set()

    def _run_keys(self, run_id: str, graph_hash: str) -> list[str]:
        return [
            keys.state_key(run_id),
            keys.run_key(run_id),
            keys.graph_key(graph_hash),
            keys.status_key(run_id),
        ]

    async def store_graph(self, compiled: CompiledBlueprint) -> bool:
        h = compiled.content_hash
        if h in self._stored:
            return False
        code = _code(await self.scripts.run("storeGraph", [keys.graph_key(h)], graph_fields(compiled)))
        if code not in (ScriptCode.STORED, ScriptCode.ALREADY_PRESENT):
            raise ScriptError(f"returned {code.name}", script="storeGraph", code=int(code))
        self._stored.add(h)
        return code == ScriptCode.STORED

    async def start_run(
        self,
        run_id: str,
        compiled: CompiledBlueprint,
        context: Sequence[tuple[str, str]],
        options: RunOptions,
        *,
        adopt: bool = False,
    ) -> CommitResult:
        await self.store_graph(compiled)
        call = start_run_call(
            run_id, compiled, context, options, self.queue_name, self.queue_prefix, adopt=adopt
        )
        result = await self.scripts.run("startRun", *call)
        code = _code(result[0])
        if code == ScriptCode.GRAPH_MISSING:
            # Stored graphs never expire, but the server may have been flushed since.
            self._stored.discard(compiled.content_hash)
            await self.store_graph(compiled)
            result = await self.scripts.run("startRun", *call)
            code = _code(result[0])
        return CommitResult(code, int(result[1]), _text(result[2]))

    async def start_runs(
        self,
        runs: Sequence[tuple[str, Sequence[tuple[str, str]]]],
        compiled: CompiledBlueprint,
        options: RunOptions,
    ) -> list[CommitResult]:
        """:meth:`start_run` for several (run id, context) pairs of one blueprint, the
        ``startRun`` calls pipelined (256 per round trip); the results in order. A call the
        server could not run yet (nothing ran: :meth:`ScriptRunner.is_missing`) or that got
        GRAPH_MISSING goes through :meth:`start_run` again."""
        await self.store_graph(compiled)
        results: list[CommitResult] = []
        for at in range(0, len(runs), _START_CHUNK):
            chunk = runs[at : at + _START_CHUNK]
            pipe = self.redis.pipeline(transaction=False)
            for run_id, context in chunk:
                keys_, args = start_run_call(
                    run_id, compiled, context, options, self.queue_name, self.queue_prefix
                )
                self.scripts.queue(pipe, "startRun", keys_, args)
            replies = await pipe.execute(raise_on_error=False)
            for (run_id, context), reply in zip(chunk, replies, strict=True):
                if isinstance(reply, Exception) and not self.scripts.is_missing(reply):
                    raise reply
                if isinstance(reply, list) and _code(reply[0]) != ScriptCode.GRAPH_MISSING:
                    results.append(CommitResult(_code(reply[0]), int(reply[1]), _text(reply[2])))
                else:
                    results.append(await self.start_run(run_id, compiled, context, options))
        return results

    async def complete_node(self, commit: NodeCommit) -> CommitResult:
        keys_, args = self._complete_node_call(commit)
        result = await self.scripts.run("completeNode", keys_, args)
        return CommitResult(_code(result[0]), int(result[1]), _text(result[2]))

    def queue_complete_node(self, pipe: Any, commit: NodeCommit) -> None:
        """Add the ``completeNode`` call to a pipeline (the caller handles a missing reply,
        :meth:`ScriptRunner.is_missing`, with :meth:`complete_node`)."""
        keys_, args = self._complete_node_call(commit)
        self.scripts.queue(pipe, "completeNode", keys_, args)

    def commit_values(self, commit: NodeCommit) -> list[Any]:
        """The commit as one group of ``finishJobs`` values: ``completeNode``'s KEYS[1..4] (the
        run's keys) followed by its ARGV."""
        keys_, args = self._complete_node_call(commit)
        return [*keys_[:4], *args]

    def _complete_node_call(self, commit: NodeCommit) -> tuple[list[str], list[Any]]:
        extra: dict[str, Any] = {}
        if commit.errors:
            extra["errors"] = commit.errors
        if commit.awaiting is not None:
            extra["awaiting"] = commit.awaiting
        if commit.sleep_ms:
            extra["sleepMs"] = commit.sleep_ms
        if commit.fetching:
            extra["fetching"] = 1
        if commit.dynamic is not None:
            extra["dynamic"] = commit.dynamic
        args: list[Any] = [
            commit.run_id,
            commit.index,
            commit.iteration,
            commit.mode,
            "*" if commit.taken is None else ",".join(map(str, commit.taken)),
            _json(extra) if extra else "",
            len(commit.writes),
        ]
        for name, value in commit.writes:
            args += [name, "" if value is None else value]
        args.append(len(commit.inputs))
        for target, name, value, transformed in commit.inputs:
            args += [target, name, value, "1" if transformed else "0"]
        args += [commit.attempt, commit.started_at, commit.error]
        return [*self._run_keys(commit.run_id, commit.graph_hash), *self._queue], args

    async def fail_node(
        self,
        run_id: str,
        graph_hash: str,
        index: int,
        iteration: int,
        message: str,
        *,
        attempt: int = 0,
        started_at: int = 0,
        detail: str = "",
    ) -> CommitResult:
        """Fail node ``index`` for good; ``detail`` is the error as its task record shows it
        (default ``message``)."""
        result = await self.scripts.run(
            "failNode",
            self._run_keys(run_id, graph_hash),
            [run_id, index, iteration, message, attempt, started_at, detail],
        )
        return CommitResult(_code(result[0]), 0, _text(result[1]))

    async def cancel_run(self, run_id: str, reason: str) -> CommitResult:
        result = await self.scripts.run(
            "cancelRun",
            [keys.state_key(run_id), keys.run_key(run_id), keys.status_key(run_id)],
            [run_id, reason, keys.CANCEL_CHANNEL],
        )
        return CommitResult(_code(result[0]), 0, _text(result[1]))

    async def resume_node(
        self, run_id: str, graph_hash: str, node_id: str | None, payload: dict[str, Any]
    ) -> tuple[ScriptCode, str | None, str | None]:
        result = await self.scripts.run(
            "resumeNode",
            [*self._run_keys(run_id, graph_hash), *self._queue],
            [run_id, node_id or "", _json(payload)],
        )
        return _code(result[0]), _text(result[1]), _text(result[2])

    async def ready_nodes(self, run_id: str, graph_hash: str) -> tuple[ScriptCode, list[ReadyNode]]:
        result = await self.scripts.run(
            "readyNodes",
            [keys.run_key(run_id), keys.graph_key(graph_hash), *self._queue, *self._finished],
            [run_id],
        )
        nodes = [
            ReadyNode(
                int(r[0]),
                _text(r[1]) or "",
                int(r[2]),
                _text(r[3]) or "",
                _text(r[4]) or "",
                _text(r[5]) or "",
            )
            for r in result[1]
        ]
        return _code(result[0]), nodes

    async def acquire_lock(self, name: str, token: str, ttl_ms: int) -> bool:
        return int(await self.scripts.run("acquireLock", [keys.lock_key(name)], [token, int(ttl_ms)])) == 1
