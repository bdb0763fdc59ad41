"""How the fast worker loop groups its slots' finishes into ``finishJobs`` calls
(bullflow.job_batch): a group is sent the moment it has ``send_at`` entries, in the turn of the
event loop of the slot that filled it, so redis runs it while the worker's other slots still run
their nodes; what is pending at the end of a turn goes then, and while the calls in flight are at
the limit the pending group grows."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis as sync_redis
from bullmq import Queue  # type: ignore[import-untyped]
from redis.asyncio import Redis

from bullflow import keys
from bullflow.coordination import RedisCoordinationStore
from bullflow.job_batch import FinishBatcher

pytestmark = pytest.mark.timeout(60)


def _batcher(redis_client: Redis, queue: str, **options: Any) -> FinishBatcher:
    store = RedisCoordinationStore(redis_client, queue, keys.DEFAULT_QUEUE_PREFIX)
    return FinishBatcher(redis_client, store, queue, keys.DEFAULT_QUEUE_PREFIX, 30_000, **options)


async def test_a_full_group_reaches_redis_while_the_turn_that_filled_it_still_runs(
    redis_client: Redis, redis_server: str, key_prefix: str
) -> None:
    batcher = _batcher(redis_client, key_prefix, send_at=2)
    queue = Queue(key_prefix, {"connection": redis_server})
    server = sync_redis.Redis.from_url(redis_server)
    active = keys.queue_keys(key_prefix, keys.DEFAULT_QUEUE_PREFIX)["active"]
    try:
        assert await batcher.take("warm-up") is None  # an empty queue: nothing to take
        await queue.add("job", {"n": 1}, {"jobId": "j1"})
        slots = [asyncio.ensure_future(batcher.take(f"slot-{k}")) for k in range(2)]
        await asyncio.sleep(0)  # both slots add their entry; the second fills the group
        # The loop is still in that turn (the worker's other slots would run their nodes here):
        # the slot that filled the group wrote its call, and the server has taken the job.
        deadline = time.monotonic() + 5
        while server.llen(active) == 0 and time.monotonic() < deadline:
            time.sleep(0.01)  # blocks the loop, as a node's CPU work does
        assert server.lrange(active, 0, -1) == [b"j1"]
        taken = await asyncio.gather(*slots)
        assert taken[1] is None and taken[0][1] == b"j1"  # the first slot's entry took it
        assert batcher.calls == 2 and batcher.jobs == 3
    finally:
        server.close()
        await queue.close()
        await batcher.close()


async def test_groups_are_sent_at_send_at_and_grow_while_the_calls_in_flight_are_at_the_limit(
    redis_client: Redis, key_prefix: str
) -> None:
    batcher = _batcher(redis_client, key_prefix, send_at=2, max_in_flight=2)
    try:
        # seven slots in one turn: two groups of two go at once (the limit of calls in flight);
        # the three left wait for a call to return and then go as one group
        results = await asyncio.gather(*(batcher.take(f"slot-{k}") for k in range(7)))
        assert results == [None] * 7
        assert (batcher.calls, batcher.jobs) == (3, 7)
    finally:
        await batcher.close()


async def test_without_send_at_one_turn_is_one_group(redis_client: Redis, key_prefix: str) -> None:
    batcher = _batcher(redis_client, key_prefix)
    try:
        assert await asyncio.gather(*(batcher.take(f"slot-{k}") for k in range(7))) == [None] * 7
        assert (batcher.calls, batcher.jobs) == (1, 7)
    finally:
        await batcher.close()


async def test_closing_with_a_reply_never_read_gives_no_one_that_reply(
    redis_client: Redis, key_prefix: str
) -> None:
    batcher = _batcher(redis_client, key_prefix, send_at=1)
    assert await batcher.take("warm-up") is None  # one held connection, idle
    slot = asyncio.ensure_future(batcher.take("slot"))
    await asyncio.sleep(0)  # the slot's group is written; the task that reads its reply has not run
    for task in list(batcher._tasks):
        task.cancel()  # (as a loop shutting down does)
    await batcher.close()
    slot.cancel()
    # the connection went back to the pool: a command on it reads its own reply
    assert await redis_client.ping() is True
    assert await redis_client.get(f"{key_prefix}:missing") is None
