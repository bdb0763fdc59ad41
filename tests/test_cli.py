"""The ``bullflow`` command, run as ``python -m bullflow.cli`` subprocesses against the session
redis-server; each test's queue is its ``key_prefix``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from bullflow import keys
from bullflow.client import Client

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
EXAMPLES = ["--registry", "examples.llm_nodes:REGISTRY", "--blueprints", "examples/blueprints"]
MODERATION = {"userId": "user-1", "userPost": "Mail me at a@b.com"}


def bullflow(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bullflow.cli", *args],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Worker:
    """A ``bullflow worker`` process; its log (stderr) goes to a file."""

    def __init__(self, proc: subprocess.Popen[str], log: Path) -> None:
        self.proc = proc
        self.log = log

    def wait_for_log(self, text: str, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log.read_text():
            if self.proc.poll() is not None:
                pytest.fail(f"worker exited ({self.proc.returncode}): {self.log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"worker log never showed {text!r}: {self.log.read_text()}")
            time.sleep(0.05)

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)


@pytest.fixture
def start_worker(redis_server: str, key_prefix: str, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """``start_worker(target, *extra_args)``: a worker on this test's queue, once it is ready."""
    workers: list[Worker] = []

    def start(target: str, *extra: str) -> Worker:
        log = tmp_path / f"worker-{len(workers)}.log"
        with log.open("w") as handle:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bullflow.cli",
                    "worker",
                    target,
                    "--redis-url",
                    redis_server,
                    "--queue",
                    key_prefix,
                    *extra,
                ],
                cwd=ROOT,
                env=ENV,
                stdout=subprocess.DEVNULL,
                stderr=handle,
                text=True,
            )
        worker = Worker(proc, log)
        workers.append(worker)
        worker.wait_for_log("worker ready")
        return worker

    yield start
    for worker in workers:
        if worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.wait(timeout=10)


def wait_for_active_job(redis_url: str, queue: str, timeout: float = 15) -> None:
    """Until a worker holds a job of the queue (bullmq's ``active`` list is not empty)."""
    active = keys.queue_keys(queue)["active"]
    with redis.Redis.from_url(redis_url) as client:
        deadline = time.monotonic() + timeout
        while not client.llen(active):
            if time.monotonic() > deadline:
                pytest.fail(f"no job of queue {queue!r} became active")
            time.sleep(0.02)


def slow_blueprint(path: Path, seconds: float) -> Path:
    """Blueprint ``slow``: ``nap`` sleeps (and logs ``<runId> nap <pid>`` to ``<path>.log``), then
    ``after``."""
    log = str(path.with_suffix(".log"))
    path.write_text(
        json.dumps(
            {
                "id": "slow",
                "nodes": [
                    {"id": "nap", "uses": "slow", "params": {"seconds": seconds, "log": log}},
                    {"id": "after", "uses": "echo", "params": {"value": "done"}},
                ],
                "edges": [{"source": "nap", "target": "after"}],
            }
        )
    )
    return path


def test_run_in_process_prints_the_completed_result() -> None:
    proc = bullflow("run", "examples/blueprints/100.json", "--context", '{"topic": "queues"}', *EXAMPLES)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "completed" and result["blueprintId"] == "100"
    assert result["context"]["final_output"].startswith("--- TITLES ---")


def test_run_on_a_worker_then_status(
    start_worker: Callable[..., Worker], redis_server: str, key_prefix: str
) -> None:
    start_worker("examples.llm_nodes:REGISTRY", "--blueprints", "examples/blueprints")
    proc = bullflow(
        "run",
        "400",
        "--context",
        json.dumps(MODERATION),
        "--blueprints",
        "examples/blueprints",
        "--redis-url",
        redis_server,
        "--queue",
        key_prefix,
        "--timeout",
        "20",
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "completed"
    assert result["context"]["final_output"].startswith("--- CONTENT MODERATION COMPLETE ---")

    status = bullflow("status", result["runId"], "--redis-url", redis_server)
    assert status.returncode == 0, status.stderr
    stored = json.loads(status.stdout)
    assert stored["status"] == "completed"
    assert stored["payload"]["context"]["final_output"] == result["context"]["final_output"]


def test_status_of_a_running_and_of_an_unknown_run(redis_server: str) -> None:
    run_id = f"cli-{time.monotonic_ns()}"
    with redis.Redis.from_url(redis_server) as client:
        client.hset(keys.run_key(run_id), "st", "running")
        try:
            proc = bullflow("status", run_id, "--redis-url", redis_server)
            assert proc.returncode == 0, proc.stderr
            assert json.loads(proc.stdout) == {"runId": run_id, "status": "running"}
        finally:
            client.delete(keys.run_key(run_id))
    proc = bullflow("status", run_id, "--redis-url", redis_server)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "unknown run" in proc.stderr and run_id in proc.stderr


@pytest.mark.parametrize(
    ("target", "named"),
    [
        ("examples.llm_nodes", "module:attribute"),
        ("examples.no_such_module:REGISTRY", "examples.no_such_module"),
        ("examples.llm_nodes:NO_SUCH", "NO_SUCH"),
        ("examples.llm_nodes:fake_llm", "function"),
    ],
)
def test_a_bad_worker_target_is_a_usage_error(target: str, named: str) -> None:
    proc = bullflow("worker", target, "--redis-url", "redis://127.0.0.1:1/0")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and target in lines[0], proc.stderr


def test_run_with_a_flow_runtime_as_registry(tmp_path: Path) -> None:
    (tmp_path / "cli_runtime_target.py").write_text(
        "from examples.declarative import make_runtime\nRUNTIME = make_runtime()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "bullflow", "run", "400", "--registry", "cli_runtime_target:RUNTIME"],
        cwd=ROOT,
        env={**ENV, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["context"]["final_output"].startswith(
        "--- CONTENT MODERATION COMPLETE ---"
    )


def test_an_unknown_blueprint_is_a_usage_error() -> None:
    proc = bullflow("run", "nope", *EXAMPLES)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "'nope'" in lines[0] and "unknown blueprint" in lines[0], proc.stderr


async def test_sigterm_lets_the_running_node_finish(
    start_worker: Callable[..., Worker], redis_server: str, key_prefix: str, tmp_path: Path
) -> None:
    path = slow_blueprint(tmp_path / "slow.json", 1.5)
    worker = start_worker("tests.integration.nodes:REGISTRY", "--blueprints", str(path))
    async with Client(
        blueprints=[json.loads(path.read_text())], connection=redis_server, queue_name=key_prefix
    ) as client:
        handle = await client.start("slow")
        wait_for_active_job(redis_server, key_prefix)  # the slow node runs
        worker.signal(signal.SIGTERM)
        # The node finishes and is committed; the run's next node waits for a worker.
        assert worker.wait(timeout=15) == 0, worker.log.read_text()
        assert "SIGTERM: stopping" in worker.log.read_text()
        start_worker("tests.integration.nodes:REGISTRY", "--blueprints", str(path))
        result = await handle.result(15)
    assert result.status == "completed", result.errors
    assert result.context["_outputs.nap"] == "nap slept" and result.context["_outputs.after"] == "done"
    # The stopping worker ran the node to its end, once.
    assert path.with_suffix(".log").read_text() == f"{handle.run_id} nap {worker.proc.pid}\n"


def test_a_second_signal_stops_at_once(
    start_worker: Callable[..., Worker], redis_server: str, key_prefix: str, tmp_path: Path
) -> None:
    path = slow_blueprint(tmp_path / "slow.json", 60)
    worker = start_worker("tests.integration.nodes:REGISTRY", "--blueprints", str(path))
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bullflow.cli",
            "run",
            str(path),
            "--redis-url",
            redis_server,
            "--queue",
            key_prefix,
            "--timeout",
            "30",
        ],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_active_job(redis_server, key_prefix)  # the 60-second node runs
        worker.signal(signal.SIGTERM)
        worker.wait_for_log("SIGTERM: stopping")
        time.sleep(0.3)
        assert worker.proc.poll() is None  # still finishing the 60-second node
        started = time.monotonic()
        worker.signal(signal.SIGINT)
        assert worker.wait(timeout=5) == 1
        assert time.monotonic() - started < 5
        assert "SIGINT (second signal): stopping at once" in worker.log.read_text()
    finally:
        run.kill()
        run.wait(timeout=10)


def test_reconcile_prints_its_stats(redis_server: str, key_prefix: str) -> None:
    proc = bullflow(
        "reconcile",
        "--redis-url",
        redis_server,
        "--queue",
        key_prefix,
        *EXAMPLES,
        "--stalled-threshold",
        "60",
    )
    assert proc.returncode == 0, proc.stderr
    stats: dict[str, Any] = json.loads(proc.stdout)
    assert set(stats) == {"scannedKeys", "stalledRuns", "reconciledRuns", "failedRuns"}
    assert all(isinstance(v, int) and v >= 0 for v in stats.values())
