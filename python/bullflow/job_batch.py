"""Group commit for the fast worker loop: the worker slots that finish a job in the same turn of
the event loop share one ``finishJobs`` call (``lua/finishJobs-10.lua``) -- each slot's node
commit, its job marked completed and, for every slot that asks, the next waiting job taken with
what its node needs read along. One round trip and one script for the whole group instead of one
of each per node: under load the groups grow (slots that finish while the calls in flight are at
the limit wait for the next one), when idle a group is one job and costs what a single call
would. A group that reaches ``send_at`` entries is written at once, by the slot that filled it,
so redis-server runs it while the worker still runs the turn's other slots: with one worker
process, the worker and redis-server no longer take turns on the two halves of the work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from . import keys
from .coordination import CoordinationStore, NodeCommit, RedisCoordinationStore
from .scripts import ScriptCode, ScriptRunner

__all__ = ["FinishBatcher", "FinishReply", "decode_finish_replies"]

logger = logging.getLogger(__name__)

# finishJobs' KEYS, in the order of its header
FINISH_KEYS = (
    "wait",
    "active",
    "meta",
    "events",
    "delayed",
    "marker",
    "stalled",
    "completed",
    "prioritized",
    "id",
)


@dataclass(frozen=True, slots=True)
class FinishReply:
    """What ``finishJobs`` did for one job: ``code`` STORED (completed) or USE_BULLMQ (nothing
    done: finish it with bullmq's own script); ``taken`` the next job it took for the slot (the
    raw reply, see the script) or None; ``committed`` the commit's reply ``[code, enqueued,
    status]``, the error text of a commit that raised, or None (no commit)."""

    code: int
    taken: Any
    committed: Any


def decode_finish_replies(raw: Sequence[Any]) -> list[tuple[int, Any, Any]]:
    """``finishJobs``' flat reply (see the script) as one ``(code, taken, committed)`` per job:
    ``taken`` the next job ``[job hash as a flat list, job id, run fields [st, g, bp] or None,
    node index or None, node fields [s, it, t, ff, rs, d] or None, input]`` or None,
    ``committed`` the commit's reply ``[code, enqueued, status]``, its error text, or None."""
    out: list[tuple[int, Any, Any]] = []
    pos = 1
    for _ in range(int(raw[0])):
        code, kind = int(raw[pos]), raw[pos + 1]
        pos += 2
        committed: Any = None
        if kind == 1:
            committed = raw[pos : pos + 3]
            pos += 3
        elif kind == 2:
            committed = raw[pos]
            pos += 1
        size = raw[pos]
        pos += 1
        taken: Any = None
        if size:
            flat = raw[pos : pos + size]
            job_id = raw[pos + size]
            pos += size + 1
            run_fields = None
            if raw[pos]:
                run_fields = raw[pos + 1 : pos + 4]
                pos += 3
            index, has_node = raw[pos + 1], raw[pos + 2]
            pos += 3
            node_fields = None
            if has_node:
                node_fields = raw[pos : pos + 6]
                pos += 6
            taken = [flat, job_id, run_fields, index, node_fields, raw[pos]]
            pos += 1
        out.append((code, taken, committed))
    return out


@dataclass(slots=True)
class _Entry:
    commit: NodeCommit | None
    job_id: str
    token: str
    keep: int
    age: str
    fetch: bool
    future: asyncio.Future[FinishReply]


class FinishBatcher:
    """Collects the finishes of one worker's slots and sends them in groups of at most
    ``max_batch``, with at most ``max_in_flight`` calls outstanding. A group is sent the moment
    it has ``send_at`` entries, in the turn of the event loop of the slot that added the last
    one: redis runs that group while the worker runs the other slots' nodes (with half the
    slots, the worker's default, the two halves alternate). What is pending at the end of a turn
    is sent then; while the calls in flight are at the limit, the pending group grows (under
    load, fewer and larger calls). With a client-side coordination store the commit is applied
    by the store first, and the group only finishes and takes jobs."""

    def __init__(
        self,
        redis: Redis,
        store: CoordinationStore,
        queue_name: str,
        queue_prefix: str,
        lock_duration_ms: int,
        *,
        max_batch: int = 64,
        max_in_flight: int = 2,
        send_at: int | None = None,
    ) -> None:
        qk = keys.queue_keys(queue_name, queue_prefix)
        self.redis = redis
        self.store = store
        # (the store's runner: it knows already whether the server runs functions)
        self.scripts = store.scripts if isinstance(store, RedisCoordinationStore) else ScriptRunner(redis)
        self.max_batch = max(1, max_batch)
        self.max_in_flight = max(1, max_in_flight)
        self.send_at = self.max_batch if send_at is None else min(max(1, send_at), self.max_batch)
        self._keys = [qk[name] for name in FINISH_KEYS]
        self._head = [
            keys.queue_key_prefix(queue_name, queue_prefix),
            lock_duration_ms,
            keys.RUN_PREFIX,
            keys.STATE_PREFIX,
            keys.GRAPH_PREFIX,
        ]
        self._pending: list[_Entry] = []
        self._scheduled = False
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        # connections held for the calls (at most one per call in flight), taken from the
        # client's pool once: a pool checkout per call (its condition, wait_for task and
        # readiness probe) cost more than the rest of the call's client side
        self._idle: list[Any] = []
        self._held: list[Any] = []
        self.calls = 0  # finishJobs calls made (and jobs sent): the average group size
        self.jobs = 0

    async def take(self, token: str) -> Any:
        """The next waiting job for a slot that has none to finish, taken in the group's call as
        bullmq's ``moveToActive`` would take it, with what its node needs read along (the raw
        reply, see the script); None when the script took none (nothing waits, or the queue is
        paused, rate limited or at its global concurrency: bullmq's own script decides then)."""
        return (await self.finish(None, "", token, 0, "", True)).taken

    async def finish(
        self, commit: NodeCommit | None, job_id: str, token: str, keep: int, age: str, fetch: bool
    ) -> FinishReply:
        """Commit (if any) and complete job ``job_id``; with ``fetch``, take the next waiting job
        for this slot. ``keep``/``age``: the job's ``removeOnComplete`` (see the script)."""
        if commit is not None and not isinstance(self.store, RedisCoordinationStore):
            await self.store.complete_node(commit)  # a client-side store commits on its own
            commit = None
        loop = asyncio.get_running_loop()
        future: asyncio.Future[FinishReply] = loop.create_future()
        self._pending.append(_Entry(commit, job_id, token, keep, age, fetch, future))
        if len(self._pending) >= self.send_at and self._in_flight < self.max_in_flight:
            self._send_group()  # full: redis starts on it while the other slots run their nodes
        if self._pending and not self._scheduled:
            # after the slots that are ready to run in this turn of the loop have added theirs
            self._scheduled = True
            loop.call_soon(self._send)
        return await future

    def _send(self) -> None:
        self._scheduled = False
        while self._pending and self._in_flight < self.max_in_flight:
            self._send_group()

    def _send_group(self) -> None:
        """Send the next group: its command written now on an idle held connection (a task only
        reads the reply), or by the task when none is idle and connected."""
        group = self._pending[: self.max_batch]
        del self._pending[: self.max_batch]
        try:
            args = self._args(group)
            conn = self._write_now(args)
        except Exception as err:  # e.g. a value the packer refuses: the group's slots fail
            for entry in group:
                if not entry.future.done():
                    entry.future.set_exception(err)
            return
        self._in_flight += 1
        self.calls += 1
        self.jobs += len(group)
        task = asyncio.get_running_loop().create_task(self._call(group, args, conn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _args(self, group: Sequence[_Entry]) -> list[Any]:
        args: list[Any] = [*self._head, len(group)]
        for entry in group:
            values: list[Any] = []
            if entry.commit is not None:
                assert isinstance(self.store, RedisCoordinationStore)
                values = self.store.commit_values(entry.commit)
            args += [
                entry.job_id,
                entry.token,
                entry.keep,
                entry.age,
                "1" if entry.fetch else "0",
                len(values),
            ]
            args += values
        return args

    def _write_now(self, args: list[Any]) -> Any:
        """An idle held connection with the group's ``finishJobs`` command (``args``) written to
        it in this turn of the loop, or None when none is idle and connected (the command is
        then built and sent by the group's task). (The write is redis-py's own ``send_command``
        without its ``await``: its stream writer's synchronous part, which hands the bytes to
        the socket at once. A connection the server has closed fails on the reply, and
        :meth:`_reply` makes the call again on a new one.)"""
        if not self._idle:
            return None
        conn = self._idle[-1]
        writer = getattr(conn, "_writer", None)  # (redis-py's; None while not connected)
        if writer is None or not conn.is_connected:
            return None
        packed = conn.pack_command(*self.scripts.command("finishJobs", self._keys, args))
        self._idle.pop()
        writer.writelines(packed)
        return conn

    async def _call(self, group: list[_Entry], args: list[Any], written: Any) -> None:
        async def execute(*command: Any) -> Any:
            nonlocal written
            if written is not None:
                conn, written = written, None
                return await self._reply(conn, command, sent=True)
            return await self._execute(*command)

        try:
            # (a restarted or flushed server, or one without functions: nothing ran; the runner
            # loads what it lacks and the group runs again)
            replies = await self.scripts.run("finishJobs", self._keys, args, execute=execute)
        except BaseException as err:
            for entry in group:
                if not entry.future.done():
                    entry.future.set_exception(err)
            if not isinstance(err, Exception):
                raise
        else:
            for entry, (code, taken, committed) in zip(group, decode_finish_replies(replies), strict=True):
                if not entry.future.done():
                    entry.future.set_result(FinishReply(code, taken, committed))
        finally:
            self._in_flight -= 1
            if self._pending and not self._scheduled:
                self._send()

    async def _execute(self, *command: Any) -> Any:
        """``command`` on a held connection (one from the client's pool when none is idle)."""
        if self._idle:
            conn = self._idle.pop()
        else:
            conn = await cast("Any", self.redis.connection_pool).get_connection()
            self._held.append(conn)
        return await self._reply(conn, command, sent=False)

    async def _reply(self, conn: Any, command: tuple[Any, ...], *, sent: bool) -> Any:
        """The reply to ``command`` on held connection ``conn`` (``sent``: written already). A
        held connection the server closed while it was idle (its ``timeout``, CLIENT KILL, a
        restart) fails on first use: the call is made once more on a new connection. Made twice
        it is still applied once: a commit the first made is a no-op the second time, and a job
        it completed is no longer active, so the second leaves it to bullmq (USE_BULLMQ), as
        after any lost reply."""
        try:
            try:
                if not sent:
                    await conn.send_command(*command)
                return await conn.read_response()
            except RedisConnectionError as error:
                await conn.disconnect(error=error)
                await conn.send_command(*command)  # connects anew
                return await conn.read_response()
        except ResponseError:
            raise  # the server's error reply, read in full
        except BaseException:
            await conn.disconnect()  # a reply may still be due on it: never reuse it as is
            raise
        finally:
            self._idle.append(conn)

    async def close(self) -> None:
        """Give the held connections back to the client's pool (after the last call). One that
        is not idle (a call whose reply was never read: its task was cancelled) is disconnected
        first, so no one reads that reply as theirs."""
        pool = cast("Any", self.redis.connection_pool)
        held, idle, self._held, self._idle = self._held, self._idle, [], []
        for conn in held:
            if not any(conn is other for other in idle):
                await conn.disconnect()
            await pool.release(conn)


def log_commit_reply(commit: NodeCommit, committed: Any) -> None:
    """Log what a batched commit did (an error the reconciler recovers from, at ERROR)."""
    if isinstance(committed, (bytes, str)):
        text = committed.decode(errors="replace") if isinstance(committed, bytes) else committed
        logger.error(
            "run %s: committing node %d failed: %s; the reconciler will run it again",
            commit.run_id,
            commit.index,
            text,
        )
    elif isinstance(committed, list) and committed and logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "run %s node %d: %s, code %s",
            commit.run_id,
            commit.index,
            commit.mode,
            ScriptCode(int(committed[0])).name,
        )
