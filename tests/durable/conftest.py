"""Fixtures of the durable tests: settings on this test's own prefix and queue, in-process
workers, worker processes (``bullflow durable-worker tests.durable.workflows``), a Workflow
client factory."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bullflow.durable import Workflow, WorkflowWorkers
from bullflow.settings import DurableSettings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def durable_settings(key_prefix: str) -> DurableSettings:
    """Short timers so suspensions, leases and stalls happen within a test."""
    return DurableSettings(
        prefix=key_prefix,
        queue_name=key_prefix,
        lease_ms=2000,
        inline_threshold=0.2,
        job_lock_ms=2000,
        stalled_interval_ms=1000,
        reconcile_grace_seconds=0.5,
        retention_seconds=3600,
    )


@pytest.fixture
def params(redis_server: str, key_prefix: str) -> dict[str, Any]:
    """What every test workflow needs to count its side effects."""
    return {"redis": redis_server, "counter": f"{key_prefix}:count"}


@pytest.fixture
async def start_workers(
    redis_server: str, durable_settings: DurableSettings
) -> AsyncIterator[Callable[..., Any]]:
    made: list[WorkflowWorkers] = []

    async def start(**options: Any) -> WorkflowWorkers:
        options.setdefault("settings", durable_settings)
        options.setdefault("reconcile_interval", None)
        workers = WorkflowWorkers(redis_server, **options)
        made.append(workers)
        return await workers.start()

    yield start
    for workers in made:
        await workers.close(force=True)


@pytest.fixture
async def workflow(
    redis_server: str, durable_settings: DurableSettings
) -> AsyncIterator[Callable[..., Workflow[Any]]]:
    made: list[Workflow[Any]] = []

    def make(cls: type[Any], **options: Any) -> Workflow[Any]:
        options.setdefault("settings", durable_settings)
        client = Workflow(cls, redis_server, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


class DurableWorkerProcess:
    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 30) -> int:
        self.proc.terminate()
        return self.proc.wait(timeout=timeout)


@pytest.fixture
def spawn_durable_worker(
    redis_server: str, durable_settings: DurableSettings
) -> Iterator[Callable[..., DurableWorkerProcess]]:
    procs: list[subprocess.Popen[str]] = []

    def spawn(*, concurrency: int = 10, reconcile_interval: float = 0) -> DurableWorkerProcess:
        s = durable_settings
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bullflow",
                "durable-worker",
                "tests.durable.workflows",
                "--redis-url",
                redis_server,
                "--prefix",
                s.prefix,
                "--queue",
                s.queue_name,
                "--concurrency",
                str(concurrency),
                "--lease-ms",
                str(s.lease_ms),
                "--inline-threshold",
                str(s.inline_threshold),
                "--job-lock-ms",
                str(s.job_lock_ms),
                "--stalled-interval-ms",
                str(s.stalled_interval_ms),
                "--reconcile-interval",
                str(reconcile_interval),
                "--reconcile-grace",
                str(s.reconcile_grace_seconds),
                "--log-level",
                "INFO",
            ],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        procs.append(proc)
        deadline = time.monotonic() + 20
        assert proc.stderr is not None
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                raise AssertionError(f"durable worker exited with {proc.wait()}")
            if "durable worker ready" in line:
                return DurableWorkerProcess(proc)
        proc.kill()
        raise AssertionError("durable worker did not start")

    yield spawn
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()
