"""Fixtures of the distributed tests: worker processes (``tests.integration.worker_main``), an
in-process adapter, and a client, all on the session redis-server and a queue of their own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bullflow.adapter import BullMQAdapter
from bullflow.client import Client

from .nodes import REGISTRY

ROOT = Path(__file__).resolve().parents[2]


class WorkerProcess:
    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        """kill -9."""
        self.proc.kill()
        self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 30) -> int:
        self.proc.terminate()
        return self.proc.wait(timeout=timeout)


@pytest.fixture
def spawn_worker(
    redis_server: str, key_prefix: str, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """``spawn_worker(blueprints, **options)`` starts a worker process on this test's queue
    (``key_prefix``) and waits until it listens."""
    procs: list[subprocess.Popen[str]] = []

    def spawn(
        blueprints: list[dict[str, Any]],
        *,
        coordination: str = "lua",
        concurrency: int = 10,
        lock_ms: int = 30_000,
        stalled_ms: int = 30_000,
        max_stalled: int = 1,
    ) -> WorkerProcess:
        path = tmp_path / f"blueprints-{len(procs)}.json"
        path.write_text(json.dumps(blueprints))
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.integration.worker_main",
                "--redis-url",
                redis_server,
                "--queue",
                key_prefix,
                "--blueprints",
                str(path),
                "--concurrency",
                str(concurrency),
                "--coordination",
                coordination,
                "--lock-ms",
                str(lock_ms),
                "--stalled-ms",
                str(stalled_ms),
                "--max-stalled",
                str(max_stalled),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "ready", f"worker did not start: {line!r}"
        return WorkerProcess(proc)

    yield spawn
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture
def worker_loop() -> str:
    """The adapter's worker loop (a module may parametrize it to run its tests on both)."""
    return "fast"


@pytest.fixture
def make_adapter(
    redis_server: str, key_prefix: str, worker_loop: str
) -> Iterator[Callable[..., BullMQAdapter]]:
    """``make_adapter(blueprints, **options)``: a started in-process worker on this test's queue
    (closed after the test)."""
    adapters: list[BullMQAdapter] = []

    def make(blueprints: Any, **options: Any) -> BullMQAdapter:
        options.setdefault("concurrency", 10)
        options.setdefault("worker_loop", worker_loop)
        adapter = BullMQAdapter(
            registry={**REGISTRY, **options.pop("registry", {})},
            blueprints=blueprints,
            connection=redis_server,
            queue_name=key_prefix,
            **options,
        )
        adapter.start()
        adapters.append(adapter)
        return adapter

    yield make
    # closed by the async finalizer below
    _PENDING_ADAPTERS.extend(adapters)


_PENDING_ADAPTERS: list[BullMQAdapter] = []


@pytest.fixture(autouse=True)
async def _close_adapters() -> AsyncIterator[None]:
    yield
    while _PENDING_ADAPTERS:
        await _PENDING_ADAPTERS.pop().close(timeout=10)


@pytest.fixture
async def make_client(redis_server: str, key_prefix: str) -> AsyncIterator[Callable[..., Client]]:
    """``make_client(blueprints)``: a client of this test's queue (closed after the test)."""
    clients: list[Client] = []

    def make(blueprints: Any, **options: Any) -> Client:
        client = Client(blueprints=blueprints, connection=redis_server, queue_name=key_prefix, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()
