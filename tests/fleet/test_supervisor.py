"""``bullflow worker --processes N``: the supervisor as a real process tree against the session
redis-server. Every child heartbeats, runs complete, a child killed with SIGKILL is started again
without losing a run, SIGTERM drains every child and a second signal stops them at once; a child
that keeps crashing right after it starts makes the supervisor give up."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from bullflow import keys
from bullflow.client import Client
from bullflow.fleet import WorkerInfo, live_workers
from bullflow.supervisor import Supervisor, SupervisorSettings, redact_argv

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def steps_blueprint(seconds: float, log: Path) -> dict[str, Any]:
    """``nap`` sleeps (then logs ``<runId> nap <pid>``), then ``after`` returns ``done``."""
    return {
        "id": "steps",
        "nodes": [
            {"id": "nap", "uses": "slow", "params": {"seconds": seconds, "log": str(log)}},
            {"id": "after", "uses": "echo", "params": {"value": "done"}},
        ],
        "edges": [{"source": "nap", "target": "after"}],
    }


class Fleet:
    """A ``bullflow worker --processes N`` process; its log (stderr of it and its children) goes
    to a file."""

    def __init__(self, proc: subprocess.Popen[str], log: Path) -> None:
        self.proc = proc
        self.log = log

    def text(self) -> str:
        return self.log.read_text()

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the supervisor did not exit within {timeout} s:\n{self.text()}")


@pytest.fixture
def start_fleet(redis_server: str, key_prefix: str, tmp_path: Path) -> Iterator[Callable[..., Fleet]]:
    fleets: list[Fleet] = []

    def start(blueprint: dict[str, Any], *extra: str) -> Fleet:
        path = tmp_path / "blueprints.json"
        path.write_text(json.dumps([blueprint]))
        log = tmp_path / f"fleet-{len(fleets)}.log"
        with log.open("w") as handle:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bullflow.cli",
                    "worker",
                    "tests.integration.nodes:REGISTRY",
                    "--blueprints",
                    str(path),
                    "--redis-url",
                    redis_server,
                    "--queue",
                    key_prefix,
                    "--heartbeat-interval",
                    "0.3",
                    *extra,
                ],
                cwd=ROOT,
                env=ENV,
                stdout=subprocess.DEVNULL,
                stderr=handle,
                text=True,
            )
        fleet = Fleet(proc, log)
        fleets.append(fleet)
        return fleet

    yield start
    for fleet in fleets:
        if fleet.proc.poll() is None:
            # its children get SIGTERM when it dies (PR_SET_PDEATHSIG) and drain
            fleet.proc.kill()
            fleet.proc.wait(timeout=10)


async def eventually(
    check: Callable[[], Awaitable[Any]], what: str, fleet: Fleet, timeout: float = 20
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s\n{fleet.text()}")
        if fleet.proc.poll() is not None:
            pytest.fail(f"{what}: the supervisor exited ({fleet.proc.returncode})\n{fleet.text()}")
        await asyncio.sleep(0.05)


async def fleet_workers(redis: Redis, queue: str) -> list[WorkerInfo]:
    return [w for w in await live_workers(redis) if w.queue == queue]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_children_heartbeat_restart_after_sigkill_without_losing_runs_and_drain_on_sigterm(
    start_fleet: Callable[..., Fleet], redis_server: str, redis_client: Redis, key_prefix: str, tmp_path: Path
) -> None:
    nap_log = tmp_path / "nap.log"
    blueprint = steps_blueprint(0.3, nap_log)
    fleet = start_fleet(
        blueprint,
        "--processes",
        "2",
        "--concurrency",
        "3",
        "--lock-duration-ms",
        "2000",
        "--stalled-interval-ms",
        "1000",
        "--shutdown-timeout",
        "10",
    )

    async def two_workers() -> list[WorkerInfo]:
        found = await fleet_workers(redis_client, key_prefix)
        return found if len(found) == 2 else []

    first = await eventually(two_workers, "two heartbeating children", fleet)
    assert {w.concurrency for w in first} == {3} and len({w.pid for w in first}) == 2
    assert fleet.proc.pid not in {w.pid for w in first}
    assert all({"slow", "echo"} <= set(w.uses) for w in first)

    client = Client(blueprints=[blueprint], connection=redis_server, queue_name=key_prefix)
    try:
        handles = [await client.start("steps", {}) for _ in range(12)]
        active = keys.queue_keys(key_prefix)["active"]

        async def both_busy() -> bool:  # more jobs in progress than one child takes
            return int(await redis_client.llen(active)) >= 4

        await eventually(both_busy, "both children running jobs", fleet)
        victim, survivor = first[0], first[1]
        os.kill(victim.pid, signal.SIGKILL)

        async def replaced() -> list[WorkerInfo]:
            found = await two_workers()
            pids = {w.pid for w in found}
            return found if victim.pid not in pids and survivor.pid in pids else []

        second = await eventually(replaced, "the killed child replaced", fleet)
        (newcomer,) = (w for w in second if w.pid != survivor.pid)
        assert pid_alive(newcomer.pid) and not pid_alive(victim.pid)
        for handle in handles:  # no run is lost: jobs of the killed child come back
            result = await handle.result(timeout=30)
            assert result.status == "completed", (result, fleet.text())
        assert f"(pid {victim.pid}) exited (signal SIGKILL)" in fleet.text()
        stalled = 0  # bullmq counts the jobs it took back from the killed child
        async for key in redis_client.scan_iter(match=f"{keys.queue_key_prefix(key_prefix)}*", count=1000):
            if await redis_client.type(key) == b"hash":
                stalled += int(await redis_client.hget(key, "stc") or 0)
        assert stalled >= 1

        async def counted() -> bool:
            return sum(w.processed for w in await fleet_workers(redis_client, key_prefix)) > 0

        await eventually(counted, "processed jobs counted", fleet)

        # SIGTERM: a node in progress is finished, then every child and the supervisor exit 0
        drained = await client.start("steps", {})

        async def nap_running() -> bool:
            return bool(await redis_client.llen(active))

        await eventually(nap_running, "the last run's node in progress", fleet)
        fleet.proc.send_signal(signal.SIGTERM)
        assert fleet.wait(timeout=20) == 0, fleet.text()
    finally:
        await client.close()
    text = fleet.text()
    assert "SIGTERM: stopping 2 processes" in text
    assert text.count("SIGTERM: stopping; finishing the nodes that run") == 2
    assert "all 2 worker processes stopped" in text
    assert f"{drained.run_id} nap " in nap_log.read_text()
    assert not pid_alive(newcomer.pid) and not pid_alive(survivor.pid)
    assert await fleet_workers(redis_client, key_prefix) == []


async def test_a_second_signal_stops_the_children_at_once(
    start_fleet: Callable[..., Fleet], redis_server: str, redis_client: Redis, key_prefix: str, tmp_path: Path
) -> None:
    blueprint = steps_blueprint(60, tmp_path / "nap.log")
    fleet = start_fleet(blueprint, "--processes", "2")

    async def two_workers() -> bool:
        return len(await fleet_workers(redis_client, key_prefix)) == 2

    await eventually(two_workers, "two heartbeating children", fleet)
    async with Client(blueprints=[blueprint], connection=redis_server, queue_name=key_prefix) as client:
        await client.start("steps", {})
        active = keys.queue_keys(key_prefix)["active"]

        async def busy() -> bool:
            return bool(await redis_client.llen(active))

        await eventually(busy, "the 60-second node in progress", fleet)
    fleet.proc.send_signal(signal.SIGTERM)

    async def draining() -> bool:
        return fleet.text().count("SIGTERM: stopping; finishing the nodes that run") == 2

    await eventually(draining, "both children draining", fleet)
    await asyncio.sleep(0.3)
    assert fleet.proc.poll() is None  # one child still finishes the 60-second node
    fleet.proc.send_signal(signal.SIGINT)
    assert fleet.wait(timeout=10) == 1
    text = fleet.text()
    assert "SIGINT (again): the processes stop at once" in text
    assert "SIGINT (second signal): stopping at once" in text


def test_processes_must_be_positive(redis_server: str) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bullflow.cli",
            "worker",
            "x:Y",
            "--redis-url",
            redis_server,
            "--processes",
            "0",
        ],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "--processes must be at least 1, got 0" in proc.stderr


def test_a_child_crashing_right_after_start_makes_the_supervisor_give_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    supervisor = Supervisor(
        [sys.executable, "-c", "import sys; sys.exit(3)"],
        2,
        settings=SupervisorSettings(min_uptime=30, backoff=0.05, max_backoff=0.1, max_early_crashes=3),
    )
    caplog.set_level("INFO", logger="bullflow.supervisor")
    started = time.monotonic()
    assert supervisor.run() == 1
    assert time.monotonic() - started < 15
    assert supervisor.gave_up
    assert supervisor.restarts >= 2
    assert "crashed 3 times in a row within 30 s of starting (last: exit code 3); giving up" in caplog.text
    assert "starting it again in 0.1 s" in caplog.text


def test_a_child_that_served_for_a_while_is_restarted_at_once(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """A child that ran past ``min_uptime`` and exits is started again with no backoff; the
    supervisor stops (SIGTERM) when asked and reports 0 when every child exited 0."""
    marker = tmp_path / "starts"
    script = (
        "import pathlib, signal, sys, time\n"
        f"p = pathlib.Path({str(marker)!r})\n"
        "n = len(p.read_text()) if p.exists() else 0\n"
        "p.write_text('x' * (n + 1))\n"
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
        "time.sleep(0.3 if n == 0 else 60)\n"
        "sys.exit(5)\n"
    )
    supervisor = Supervisor(
        [sys.executable, "-c", script], 1, settings=SupervisorSettings(min_uptime=0.2, backoff=10)
    )
    caplog.set_level("INFO", logger="bullflow.supervisor")

    def stop_when_restarted(signum: int, frame: Any) -> None:
        if len(marker.read_text() if marker.exists() else "") >= 2:
            supervisor.stop(signal.SIGTERM)
        else:
            signal.setitimer(signal.ITIMER_REAL, 0.1)

    previous = signal.signal(signal.SIGALRM, stop_when_restarted)
    signal.setitimer(signal.ITIMER_REAL, 0.1)
    try:
        started = time.monotonic()
        assert supervisor.run() == 0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - started < 8  # no 10-second backoff
    assert supervisor.restarts == 1
    assert "exited (exit code 5) after" in caplog.text and "starting it again" in caplog.text


def test_the_log_never_shows_a_url_password() -> None:
    line = redact_argv(["bullflow", "--redis-url", "rediss://app:s3cret@redis:6380/0", "redis://h:6379/0"])
    assert line == "bullflow --redis-url rediss://app:***@redis:6380/0 redis://h:6379/0"


async def test_durable_workers_share_the_supervisor(
    redis_server: str, redis_client: Redis, key_prefix: str, tmp_path: Path
) -> None:
    log = tmp_path / "durable.log"
    with log.open("w") as handle:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bullflow.cli",
                "durable-worker",
                "tests.durable.workflows",
                "--redis-url",
                redis_server,
                "--prefix",
                key_prefix,
                "--queue",
                key_prefix,
                "--processes",
                "2",
                "--heartbeat-interval",
                "0.3",
                "--reconcile-interval",
                "0",
            ],
            cwd=ROOT,
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=handle,
            text=True,
        )
    fleet = Fleet(proc, log)
    try:

        async def two_durable_workers() -> bool:
            found = await fleet_workers(redis_client, key_prefix)
            return len(found) == 2 and all(w.kind == "durable" and "ThreeSteps" in w.uses for w in found)

        await eventually(two_durable_workers, "two heartbeating durable workers", fleet)
        proc.send_signal(signal.SIGTERM)
        assert fleet.wait(timeout=20) == 0, fleet.text()
        assert fleet.text().count("SIGTERM: stopping; finishing the activations that run") == 2
        assert await fleet_workers(redis_client, key_prefix) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
