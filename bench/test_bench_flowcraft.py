"""Flowcraft's own Node.js BullMQ adapter (flowcraft 2.10.1, @flowcraft/bullmq-adapter 1.7.1) on
workload W3 -- 500 concurrent 4-node no-op diamonds -- with 1 and 2 worker processes, on the
bench's loopback redis-server: the reference bullflow's "distributed: W3 diamonds-500" rows are
compared with.

``bench/flowcraft/w3.mjs`` forks the Node workers (the adapter's hard-coded BullMQ concurrency of 5
each), warms up with 20 runs, then runs one round per line it reads from stdin, so each benchmark
round times exactly one round of 500 runs. Each round's JSON line carries its own wall time and
CPU (worker processes + redis-server, from /proc); ``w3.mjs`` exits non-zero unless every run
published ``completed`` with all four outputs. Reported per case: nodes/s and CPU microseconds per
node of the median round. Needs ``make flowcraft-deps`` (npm ci in bench/flowcraft).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from bench.test_bench_distributed import FLOWCRAFT_NODES_PER_S

FLOWCRAFT_DIR = Path(__file__).resolve().parent / "flowcraft"
RUNS = 500
ROUNDS = 3


@pytest.mark.timeout(300)
@pytest.mark.parametrize("workers", [1, 2])
def test_flowcraft_w3(benchmark: Any, redis_server: str, redis_pid: int, workers: int) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH")
    if not (FLOWCRAFT_DIR / "node_modules").is_dir():
        pytest.skip("bench/flowcraft/node_modules is missing: run `make flowcraft-deps`")
    proc = subprocess.Popen(
        [
            node,
            "w3.mjs",
            "--redis-url",
            redis_server,
            "--redis-pid",
            str(redis_pid),
            "--workers",
            str(workers),
            "--runs",
            str(RUNS),
            "--rounds",
            str(ROUNDS),
            "--queue",
            f"flowcraft-w3-{workers}w-{uuid.uuid4().hex[:8]}",
            "--step",
        ],
        cwd=FLOWCRAFT_DIR,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    samples: list[dict[str, Any]] = []

    def read_line() -> dict[str, Any]:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"w3.mjs exited with {proc.wait(timeout=20)} (see its stderr above)")
        result: dict[str, Any] = json.loads(line)
        return result

    def once() -> int:
        assert proc.stdin is not None
        proc.stdin.write("\n")
        proc.stdin.flush()
        sample = read_line()
        samples.append(sample)
        return int(sample["nodes"])

    try:
        ready = read_line()
        assert ready.get("ready") is True, ready
        benchmark.group = "distributed: W3 diamonds-500"
        nodes = benchmark.pedantic(once, rounds=ROUNDS, iterations=1)
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdin.close()
        proc.stdout.close()
    assert nodes == 4 * RUNS
    median = sorted(samples, key=lambda s: s["seconds"])[len(samples) // 2]
    benchmark.extra_info.update(
        impl=f"flowcraft-node-{workers}w",
        nodes=nodes,
        workers=workers,
        concurrency=ready["concurrency"],
        nodes_per_s=median["nodes_per_s"],
        cpu_us_per_node=median["cpu_us_per_node"],
        cpu_us_per_node_workers=median["cpu_us_per_node_workers"],
        cpu_us_per_node_redis=median["cpu_us_per_node_redis"],
        node_executions=[s["node_executions"] for s in samples],  # 2,000 each unless work is lost or repeated
        flowcraft_nodes_per_s=FLOWCRAFT_NODES_PER_S[f"W3-{workers}"],
    )
