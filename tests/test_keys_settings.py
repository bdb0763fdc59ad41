"""The wire contract's key formats, and Redis settings."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from bullflow import keys
from bullflow.exceptions import SettingsError
from bullflow.settings import RedisSettings


def test_flowcraft_key_formats() -> None:
    assert keys.state_key("run-1") == "workflow:state:run-1"
    assert keys.status_key("run-1") == "workflow:status:run-1"
    assert keys.job_id("run-1", "node-A") == "run-1_node-A"
    assert (keys.DEFAULT_QUEUE, keys.EXECUTE_NODE_JOB) == ("flowcraft-queue", "executeNode")
    assert keys.queue_key_prefix() == "bull:flowcraft-queue:"
    assert keys.graph_key("ab" * 32) == "bullflow:graph:" + "ab" * 32


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://localhost", RedisSettings(host="localhost")),
        ("redis://127.0.0.1:6380/2", RedisSettings(port=6380, db=2)),
        (
            "rediss://user:p%40ss@cache.internal:6390/1",
            RedisSettings(host="cache.internal", port=6390, db=1, username="user", password="p@ss", ssl=True),
        ),
        ("redis://:secret@h", RedisSettings(host="h", password="secret")),
    ],
)
def test_from_url(url: str, expected: RedisSettings) -> None:
    assert RedisSettings.from_url(url) == expected


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://localhost", "the scheme must be redis:// or rediss://"),
        ("redis://localhost/x", "the database must be a number"),
        ("redis://localhost:notaport", "invalid Redis URL"),
    ],
)
def test_bad_urls(url: str, problem: str) -> None:
    with pytest.raises(SettingsError, match=problem):
        RedisSettings.from_url(url)


def test_passwords_are_never_shown() -> None:
    settings = RedisSettings.from_url("rediss://user:hunter2@h:1/0")
    assert "hunter2" not in repr(settings)
    assert settings.url() == "rediss://user:***@h:1/0"
    with pytest.raises(SettingsError) as info:
        RedisSettings.from_url("redis://u:hunter2@h/notadb")
    assert "hunter2" not in str(info.value)


def test_no_client_side_read_timeout_by_default() -> None:
    assert RedisSettings().redis_kwargs()["socket_timeout"] is None


async def test_client_talks_to_the_server(redis_client: Redis) -> None:
    assert await redis_client.ping() is True


def test_durable_key_formats_share_one_cluster_slot() -> None:
    from redis.crc import key_slot

    k = keys.instance_keys("order-17")
    assert k.instance == "bullflow:wf:{order-17}"
    assert (k.lease, k.steps, k.events, k.waiters, k.log) == tuple(
        f"bullflow:wf:{{order-17}}:{suffix}" for suffix in ("lease", "steps", "events", "waiters", "log")
    )
    assert k.done == keys.done_channel("order-17") == "bullflow:wf:done:{order-17}"
    assert (
        len({key_slot(key.encode()) for key in (k.instance, k.lease, k.steps, k.events, k.waiters, k.log)})
        == 1
    )
    custom = keys.instance_keys("x", "acme")
    assert custom.instance == "acme:wf:{x}"
    assert keys.active_index_key("acme") == "acme:wf:active"
    assert keys.durable_cancel_channel() == "bullflow:wf:cancel"
    assert keys.reconciler_lock_key() == "bullflow:wf:reconciler"
    assert keys.durable_job_id("order-17", 3) == "order-17-r3"
    assert keys.step_key("do", "charge", 2) == "do:charge#2"
    assert keys.step_key("do", "inner", 1, "do:outer#1") == "do:outer#1/do:inner#1"
    assert (keys.DEFAULT_DURABLE_QUEUE, keys.DURABLE_RUN_JOB) == ("bullflow-durable", "durable-run")


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"step_limit": 0}, "step_limit"),
        ({"step_limit": 10_001}, "step_limit"),
        ({"lease_ms": 10}, "lease_ms"),
        ({"prefix": ""}, "prefix"),
        ({"inline_threshold": -1}, "inline_threshold"),
    ],
)
def test_bad_durable_settings(options: dict[str, object], problem: str) -> None:
    from bullflow.settings import DurableSettings

    with pytest.raises(SettingsError, match=problem):
        DurableSettings(**options)  # type: ignore[arg-type]


def test_run_tracking_keys_are_the_ones_the_scripts_write() -> None:
    """The scripts build the run log, run index and metrics keys themselves: the names and the
    latency bounds in the Lua includes are the ones keys.py and bullflow.tracking document."""
    from pathlib import Path

    from bullflow import python_coordination, tracking

    lua = Path(keys.__file__).parent / "lua"
    assert keys.run_log_key("r1") == "bullflow:runlog:r1"
    assert keys.metrics_minute_key(60000) == "bullflow:metrics:m:60000"
    log_run = (lua / "includes" / "logRun.lua").read_text()
    assert f'"{keys.RUN_LOG_PREFIX}" .. run.id' in log_run
    assert f'"{keys.RUN_LOG_PREFIX}" .. run.id' in (lua / "includes" / "publishStatus.lua").read_text()
    assert f'"{keys.RUN_INDEX_KEY}"' in (lua / "startRun-11.lua").read_text()
    counts = (lua / "includes" / "writeNodeCounts.lua").read_text()
    assert f'"{keys.METRICS_KEY}"' in counts and f'"{keys.METRICS_MINUTE_PREFIX}"' in counts
    # every metrics counter (node and run counts, both histograms) is written there, once per script
    writers = {p.name for p in lua.rglob("*.lua") if f'"{keys.METRICS_KEY}"' in p.read_text()}
    assert writers == {"writeNodeCounts.lua"}
    bucket = (lua / "includes" / "latencyBucket.lua").read_text()
    bounds = bucket.split("local latencyBounds = {", 1)[1].split("}", 1)[0]
    assert tuple(int(b) for b in bounds.split(",")) == tracking.LATENCY_BUCKETS_MS
    assert python_coordination._LATENCY_BUCKETS_MS == tracking.LATENCY_BUCKETS_MS
