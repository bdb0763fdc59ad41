"""Distributed throughput (issue 4): worker processes (``tests.integration.worker_main``) on a
loopback redis-server, a client in this process. Cases, each with 1 and 2 worker processes:

* W1 -- one 200-node chain;
* W2 -- a 100-wide fan-out into one all-join (102 nodes);
* W3 -- 500 concurrent 4-node diamonds (2,000 nodes), also with the pure-Python coordination and
  with the ``chained`` and stock ``bullmq`` worker loops;
* chain scaling -- a 50-node, a 5,000-node and a 10,000-node chain (the per-node cost must stay
  flat).

Reported per case: nodes/s and CPU microseconds per node (worker processes + redis-server, from
/proc). In the same run a no-op ``bullmq`` Worker drains 5,000 jobs: the baseline each figure is
compared with. Flowcraft's Node adapter on this kind of machine (the issue's figures): W1 about
700 nodes/s, W2 about 1,000, W3 about 2,300 with 1 worker and 4,100 with 2.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from bullmq import Queue, Worker
from loadtest.blueprints import DIAMOND, chain, fanout

from bullflow.client import Client
from bullflow.settings import RedisSettings

ROOT = Path(__file__).resolve().parents[1]
FLOWCRAFT_NODES_PER_S = {"W1": 700, "W2": 1000, "W3-1": 2300, "W3-2": 4100}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


BLUEPRINTS = [chain(200), chain(50), chain(5000), chain(10000), fanout(100), DIAMOND]


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def runqueue_seconds(pid: int) -> float:
    """How long the process has waited, runnable, for a CPU (``/proc/<pid>/schedstat``, ns)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


class Pool:
    """Worker processes for one (workers, coordination) configuration, on a queue of their own."""

    def __init__(
        self, url: str, queue: str, workers: int, coordination: str, loop: str, blueprint_file: Path
    ) -> None:
        self.url = url
        self.queue = queue
        self.procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.integration.worker_main",
                    "--redis-url",
                    url,
                    "--queue",
                    queue,
                    "--blueprints",
                    str(blueprint_file),
                    "--concurrency",
                    "20",
                    "--coordination",
                    coordination,
                    "--worker-loop",
                    loop,
                ],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                text=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            for _ in range(workers)
        ]
        for proc in self.procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"

    def close(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
            if proc.stdout is not None:
                proc.stdout.close()


@pytest.fixture(scope="module")
def pools(redis_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Pool]]:
    path = tmp_path_factory.mktemp("bench") / "blueprints.json"
    path.write_text(json.dumps(BLUEPRINTS))
    made: dict[tuple[int, str, str], Pool] = {}

    def get(workers: int, coordination: str, loop: str) -> Pool:
        key = (workers, coordination, loop)
        if key not in made:
            for other in list(made):
                made.pop(other).close()  # one configuration at a time: idle pools still poll
            made[key] = Pool(
                redis_server, f"bench-{coordination}-{loop}-{workers}", workers, coordination, loop, path
            )
        return made[key]

    yield get
    for pool in made.values():
        pool.close()


async def run_workload(client: Client, blueprint_id: str, runs: int) -> int:
    """Start ``runs`` runs at once (``startRun`` calls pipelined) and wait for them all; returns
    the nodes they completed."""
    handles = await client.start_many(blueprint_id, runs)
    results = await asyncio.gather(*(h.result(300) for h in handles))
    nodes = 0
    for result in results:
        assert result.status == "completed", result.errors
        nodes += sum(1 for key in result.context if key.startswith("_outputs."))
    return nodes


CASES = [
    # (case, blueprint, runs, workers, coordination, worker loop)
    ("W1 chain-200", "chain-200", 1, 1, "lua", "fast"),
    ("W1 chain-200", "chain-200", 1, 2, "lua", "fast"),
    ("W2 fanout-100", "fanout-100", 1, 1, "lua", "fast"),
    ("W2 fanout-100", "fanout-100", 1, 2, "lua", "fast"),
    ("W3 diamonds-500", "diamond", 500, 1, "lua", "fast"),
    ("W3 diamonds-500", "diamond", 500, 2, "lua", "fast"),
    ("W3 diamonds-500", "diamond", 500, 1, "python", "fast"),
    ("W3 diamonds-500", "diamond", 500, 2, "python", "fast"),
    ("W3 diamonds-500", "diamond", 500, 1, "lua", "chained"),
    ("W3 diamonds-500", "diamond", 500, 1, "lua", "bullmq"),
    ("chain-50", "chain-50", 1, 1, "lua", "fast"),
    ("chain-5000", "chain-5000", 1, 1, "lua", "fast"),
    ("chain-10000", "chain-10000", 1, 1, "lua", "fast"),
]


@pytest.mark.parametrize(("case", "blueprint_id", "runs", "workers", "coordination", "loop"), CASES)
def test_distributed(
    benchmark: Any,
    run_async: Any,
    pools: Callable[..., Pool],
    redis_server: str,
    redis_pid: int,
    case: str,
    blueprint_id: str,
    runs: int,
    workers: int,
    coordination: str,
    loop: str,
) -> None:
    pool = pools(workers, coordination, loop)
    client = Client(blueprints=BLUEPRINTS, connection=redis_server, queue_name=pool.queue)
    pids = [p.pid for p in pool.procs] + [redis_pid]
    samples: list[tuple[int, float, float, float]] = []

    def once() -> int:
        cpu0, wait0, t0 = cpu_seconds(pids), runqueue_seconds(redis_pid), time.perf_counter()
        nodes = run_async(lambda: run_workload(client, blueprint_id, runs))
        elapsed = time.perf_counter() - t0
        samples.append((nodes, cpu_seconds(pids) - cpu0, elapsed, runqueue_seconds(redis_pid) - wait0))
        return nodes

    benchmark.group = f"distributed: {case}"
    run_async(lambda: run_workload(client, blueprint_id, min(runs, 20)))  # warm-up: compile, learn reads
    expected = {
        "chain-200": 200,
        "chain-50": 50,
        "chain-5000": 5000,
        "chain-10000": 10000,
        "fanout-100": 102,
        "diamond": 4,
    }[blueprint_id]
    nodes = benchmark.pedantic(
        once, rounds=1 if blueprint_id in ("chain-5000", "chain-10000") else 3, iterations=1
    )
    assert nodes == expected * runs
    run_async(client.close)
    best = sorted(samples, key=lambda s: s[2])[len(samples) // 2]
    benchmark.extra_info.update(
        impl=f"{coordination}-{loop}-{workers}w",
        loop=loop,
        nodes=nodes,
        workers=workers,
        coordination=coordination,
        cpu_us_per_node=round(best[1] / best[0] * 1e6, 1),
        # the share of the round redis-server spent runnable but waiting for a CPU (the workers,
        # the client and other load on the same cores)
        redis_cpu_wait_pct=round(100 * best[3] / best[2], 1),
    )
    key = case.split()[0] + (f"-{workers}" if case.startswith("W3") else "")
    if key in FLOWCRAFT_NODES_PER_S and coordination == "lua" and loop == "fast":
        benchmark.extra_info["flowcraft_nodes_per_s"] = FLOWCRAFT_NODES_PER_S[key]


def test_bullmq_noop_drain(benchmark: Any, run_async: Any, redis_server: str, redis_pid: int) -> None:
    """The baseline: one process with a stock bullmq Worker (concurrency 10) drains 5,000
    pre-filled no-op jobs."""
    settings = RedisSettings.from_url(redis_server)
    connection = {"host": settings.host, "port": settings.port, "socket_timeout": None}
    count = 5000
    counter = iter(range(10**9))

    async def drain() -> int:
        name = f"noop-drain-{next(counter)}"
        queue = Queue(name, {"connection": connection})
        await queue.addBulk([{"name": "noop", "data": {"i": i}} for i in range(count)])
        done = asyncio.get_running_loop().create_future()
        processed = 0

        async def process(job: Any, token: str) -> None:
            nonlocal processed
            processed += 1
            if processed == count and not done.done():
                done.set_result(None)

        worker = Worker(name, process, {"connection": connection, "concurrency": 10})
        try:
            await asyncio.wait_for(done, 120)
        finally:
            await asyncio.wait_for(worker.close(), 20)
            await queue.obliterate(force=True)
            await queue.close()
        return processed

    benchmark.group = "distributed: bullmq no-op drain (baseline)"
    processed = benchmark.pedantic(lambda: run_async(drain), rounds=3, iterations=1)
    assert processed == count
    benchmark.extra_info.update(impl="bullmq", items=count, baseline=True)
