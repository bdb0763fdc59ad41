"""``WorkflowClientUser``: a locust ``User`` that starts bullflow runs on a queue's workers and
waits for their results, with the synchronous redis-py client (locust runs on gevent; no asyncio).

* On start the blueprints' graphs are stored once per process (``storeGraph``, the HSET arguments
  of :func:`bullflow.coordination.graph_fields`).
* A run is started with one call of ``startRun`` (FCALL, or EVALSHA on a server without
  functions) with the keys and arguments
  :meth:`bullflow.coordination.RedisCoordinationStore.start_run` passes (keys from
  :mod:`bullflow.keys` only; what the server lacks is loaded and the call made again).
* Statuses arrive on one ``bullflow:status:*`` pattern subscription per process: a greenlet reads
  it and wakes the waiting user. After registering, the user also GETs the status key, so a status
  published before the registration is not missed.
* Each run is reported as a locust request event: ``request_type="run"``, ``name`` = the blueprint
  id, ``response_time`` = start -> result in ms, an ``exception`` when the status is not
  ``completed`` or no status came within ``--run-timeout`` seconds. A run without a status is a
  *lost run*: it is counted and the locust process exits with code 3.

When locust quits, the final request stats and failures are written to ``<csv prefix>_stats.csv``
and ``_failures.csv`` (locust's own writer refreshes them only once a second), and the counts of
this process (started, completed, failed, lost, interrupted) to ``<csv prefix>_runs.json``, for
``loadtest/run.py`` to read.
"""

from __future__ import annotations

import csv
import json
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import gevent
import redis
from gevent.event import AsyncResult
from gevent.lock import Semaphore
from locust import User, events
from locust.env import Environment
from locust.stats import PERCENTILES_TO_REPORT, StatsCSV
from redis.exceptions import ResponseError

from bullflow import keys
from bullflow.compile import CompiledBlueprint
from bullflow.coordination import RunOptions, graph_fields, start_run_call
from bullflow.runtime import FlowRuntime
from bullflow.scripts import ScriptCalls, ScriptCode
from loadtest.blueprints import BLUEPRINTS

__all__ = ["LostRunError", "RunFailedError", "RunTracker", "WorkflowClientUser"]

logger = logging.getLogger(__name__)

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
LOST_RUN_EXIT_CODE = 3


class RunFailedError(Exception):
    """A run finished with a status other than ``completed`` (or could not be started)."""


class LostRunError(Exception):
    """No status came for a run within the timeout."""


@dataclass
class RunTracker:
    """What this process's users started and what became of it."""

    started: int = 0
    completed: int = 0
    failed: int = 0
    lost: int = 0
    interrupted: int = 0  # a user stopped (not gracefully) while it waited


TRACKER = RunTracker()


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    group = parser.add_argument_group("bullflow")
    group.add_argument("--bullflow-queue", default="loadtest", help="BullMQ queue the workers consume")
    group.add_argument(
        "--run-timeout", type=float, default=30.0, help="seconds a run may take before it counts as lost"
    )


@events.quitting.add_listener
def _on_quitting(environment: Environment, **_: Any) -> None:
    counts = asdict(TRACKER)
    logger.info("runs: %s", counts)
    options = environment.parsed_options
    prefix = getattr(options, "csv_prefix", None) if options is not None else None
    if prefix:
        # locust's CSV writer refreshes its files once a second and may miss the runs that ended
        # while the users stopped: write the final figures now.
        final = StatsCSV(environment, PERCENTILES_TO_REPORT)
        with open(f"{prefix}_stats.csv", "w", newline="") as handle:
            final.requests_csv(csv.writer(handle))
        with open(f"{prefix}_failures.csv", "w", newline="") as handle:
            final.failures_csv(csv.writer(handle))
        Path(f"{prefix}_runs.json").write_text(json.dumps(counts) + "\n")
    if TRACKER.lost:
        logger.error("%d runs were lost (no status within the run timeout)", TRACKER.lost)
        environment.process_exit_code = LOST_RUN_EXIT_CODE
    elif environment.runner is not None and not environment.runner.exceptions:
        # Failed runs are judged by the runner (a failure ratio), not by locust's exit code.
        environment.process_exit_code = 0


class SyncScripts(ScriptCalls):
    """The Lua on a synchronous redis-py client, called as :class:`bullflow.scripts.ScriptRunner`
    calls it (a function of the library, or a script), without asyncio."""

    def __init__(self, client: redis.Redis) -> None:
        super().__init__()
        self.client = client

    def run(self, name: str, keys_: Sequence[str], args: Sequence[Any]) -> Any:
        for _ in range(2):
            try:
                return self.client.execute_command(*self.command(name, keys_, args))
            except ResponseError as error:
                if not self.is_missing(error):
                    raise
                remedy = self.remedy(name, error)
                if remedy is not None:
                    try:
                        self.client.execute_command(*remedy)
                    except ResponseError as refused:
                        self.use_scripts(refused)
        return self.client.execute_command(*self.command(name, keys_, args))


class StatusListener:
    """One ``bullflow:status:*`` pattern subscription and the greenlet reading it; wakes the
    :class:`AsyncResult` registered for a run with the run's status JSON."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.waiters: dict[str, AsyncResult] = {}
        self.pubsub = client.pubsub()
        self.pubsub.psubscribe(keys.STATUS_CHANNEL_PREFIX + "*")
        deadline = time.monotonic() + 10
        while True:  # the subscription is in place before any run starts
            message = self.pubsub.get_message(timeout=1.0)
            if message is not None and message["type"] == "psubscribe":
                break
            if time.monotonic() > deadline:
                raise RuntimeError("no psubscribe confirmation within 10 s")
        self.greenlet = gevent.spawn(self._read)

    def register(self, run_id: str) -> AsyncResult:
        waiter = AsyncResult()
        self.waiters[run_id] = waiter
        return waiter

    def unregister(self, run_id: str) -> None:
        self.waiters.pop(run_id, None)

    def _wake(self, run_id: str, raw: bytes) -> None:
        waiter = self.waiters.get(run_id)
        if waiter is not None and not waiter.ready():
            waiter.set(raw)

    def _read(self) -> None:
        prefix = keys.STATUS_CHANNEL_PREFIX.encode()
        while True:
            try:
                message = self.pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            except redis.RedisError as err:
                # redis-py subscribes again on the next read; statuses sent meanwhile are read
                # from their keys.
                logger.warning("status subscription: %s; reconnecting", err)
                gevent.sleep(0.5)
                self._recheck()
                continue
            if message is None or message["type"] != "pmessage":
                continue
            channel = message["channel"]
            if channel.startswith(prefix):
                self._wake(channel[len(prefix) :].decode(), message["data"])

    def _recheck(self) -> None:
        for run_id in list(self.waiters):
            try:
                raw = self.client.get(keys.status_key(run_id))
            except redis.RedisError:
                return
            if raw is not None:
                self._wake(run_id, raw)

    def close(self) -> None:
        self.greenlet.kill(block=False)
        self.pubsub.close()


class _Connection:
    """What the users of one process share for one (host, queue): the client, the scripts, the
    status listener and the stored graphs."""

    def __init__(self, url: str, queue: str, blueprints: Sequence[Any], options: RunOptions) -> None:
        self.client = redis.Redis.from_url(url)
        self.scripts = SyncScripts(self.client)
        self.listener = StatusListener(self.client)
        self.queue = queue
        self.options = options
        runtime = FlowRuntime(blueprints=blueprints)
        self.compiled: dict[str, CompiledBlueprint] = {
            bp_id: runtime.compile(bp_id) for bp_id in sorted(runtime.blueprints)
        }
        for compiled in self.compiled.values():
            self.store_graph(compiled)

    def store_graph(self, compiled: CompiledBlueprint) -> None:
        code = ScriptCode(
            int(
                self.scripts.run(
                    "storeGraph", [keys.graph_key(compiled.content_hash)], graph_fields(compiled)
                )
            )
        )
        if code not in (ScriptCode.STORED, ScriptCode.ALREADY_PRESENT):
            raise RunFailedError(f"storeGraph returned {code.name} for {compiled.id}")

    def start_run(self, run_id: str, compiled: CompiledBlueprint) -> ScriptCode:
        """``RedisCoordinationStore.start_run`` (no initial context, not adopted)."""
        run_keys, args = start_run_call(
            run_id, compiled, (), self.options, self.queue, self.options.queue_prefix
        )
        code = ScriptCode(int(self.scripts.run("startRun", run_keys, args)[0]))
        if code == ScriptCode.GRAPH_MISSING:  # the server was flushed since the graph was stored
            self.store_graph(compiled)
            code = ScriptCode(int(self.scripts.run("startRun", run_keys, args)[0]))
        return code


class WorkflowClientUser(User):
    """Base class: subclasses add tasks that call :meth:`run_workflow` with a blueprint id.

    ``host`` is the Redis URL (loopback only); the queue and the run timeout come from the
    ``--bullflow-queue`` and ``--run-timeout`` options."""

    abstract = True
    blueprints: ClassVar[Sequence[Any]] = BLUEPRINTS
    run_options: ClassVar[RunOptions] = RunOptions()

    _connections: ClassVar[dict[tuple[str, str], _Connection]] = {}
    _connect_lock: ClassVar[Semaphore] = Semaphore()

    def on_start(self) -> None:
        url = self.host or ""
        host = urlsplit(url).hostname
        if urlsplit(url).scheme != "redis" or host not in LOOPBACK_HOSTS:
            raise ValueError(f"--host must be a redis:// URL on the loopback interface, got {url!r}")
        options = self.environment.parsed_options
        queue = getattr(options, "bullflow_queue", None) or "loadtest"
        self.run_timeout = float(getattr(options, "run_timeout", None) or 30.0)
        with self._connect_lock:  # the first user of the process connects, subscribes, stores
            connection = self._connections.get((url, queue))
            if connection is None:
                connection = _Connection(url, queue, self.blueprints, self.run_options)
                self._connections[(url, queue)] = connection
        self.connection = connection

    def run_workflow(self, blueprint_id: str) -> None:
        """Start one run of ``blueprint_id``, wait for its status and report it."""
        connection = self.connection
        compiled = connection.compiled[blueprint_id]
        run_id = str(uuid.uuid4())
        waiter = connection.listener.register(run_id)
        began = time.perf_counter()
        error: Exception | None = None
        length = 0
        try:
            code = connection.start_run(run_id, compiled)
            if code != ScriptCode.STORED:
                raise RunFailedError(f"startRun returned {code.name} for run {run_id}")
            TRACKER.started += 1
            raw = connection.client.get(keys.status_key(run_id))
            if raw is not None and not waiter.ready():
                waiter.set(raw)
            try:
                raw = waiter.get(timeout=self.run_timeout)
            except gevent.Timeout:
                TRACKER.lost += 1
                raise LostRunError(f"run {run_id} reported no status within {self.run_timeout:g} s") from None
            length = len(raw)
            status = json.loads(raw)
            if status.get("status") != "completed":
                raise RunFailedError(
                    f"run {run_id}: {status.get('status')}: {status.get('reason') or 'no reason given'}"
                )
            TRACKER.completed += 1
        except gevent.GreenletExit:
            TRACKER.interrupted += 1
            raise
        except LostRunError as err:
            error = err
        except Exception as err:
            TRACKER.failed += 1
            error = err
        finally:
            connection.listener.unregister(run_id)
        self.environment.events.request.fire(
            request_type="run",
            name=blueprint_id,
            response_time=(time.perf_counter() - began) * 1000,
            response_length=length,
            exception=error,
            context={"run_id": run_id},
        )
