"""`make loadtest`: the ``workflows`` scenario (``loadtest/workflows.py``) against a redis-server
and worker processes of its own, then a summary of the runs.

Starts a throwaway ``redis-server`` on a free loopback port (``--save '' --appendonly no``, a temp
dir), ``--workers`` worker processes (``tests.integration.worker_main``) on a queue of their own
with the scenario's blueprints, runs locust headless for ``--run-time`` (defaults from
``loadtest/locust.conf``), stops the workers and the server (also on Ctrl-C or an error), reads
locust's CSV stats and prints requests/s, the failure ratio and p50/p95/p99 of the ``run`` events.

Exit status: 0, or 1 when a run was lost (no status within ``--run-timeout``), the failure ratio
is above ``--max-failure-ratio`` (0.1 %), nothing was run, or locust or a worker failed.

    python -m loadtest.run [--run-time 60s] [--users N] [--spawn-rate R] [--step] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from examples.distributed_demo import start_redis, stop

from .blueprints import BLUEPRINTS
from .common_run import (
    CONF,
    HERE,
    float_of,
    load_parser,
    load_problems,
    locust_flags,
    out,
    prepare_csv_prefix,
    read_failures,
    read_stats,
    run_locust,
    start_workers,
    stop_workers,
    verdict,
)

SCENARIO = HERE / "workflows.py"
STEP_SHAPE = HERE / "step_shape.py"


def locust_command(args: argparse.Namespace, redis_url: str, queue: str, csv_prefix: Path) -> list[str]:
    files = f"{SCENARIO},{STEP_SHAPE}" if args.step else str(SCENARIO)
    return [
        *(sys.executable, "-m", "locust", "--config", str(CONF), "-f", files),
        *("--host", redis_url, "--bullflow-queue", queue, "--csv", str(csv_prefix)),
        *locust_flags(args, ("run_time", "users", "spawn_rate", "run_timeout")),
    ]


def summarize(csv_prefix: Path, max_failure_ratio: float) -> list[str]:
    """Print the run events' figures; returns what is wrong with them."""
    runs_file = Path(f"{csv_prefix}_runs.json")
    rows = read_stats(csv_prefix)
    if rows is None:
        return [f"locust wrote no stats ({csv_prefix}_stats.csv is missing)"]
    shapes = [row for row in rows if row["Type"] == "run"]
    total_row = next((row for row in rows if row["Name"] == "Aggregated"), None)
    counts: dict[str, Any] = json.loads(runs_file.read_text()) if runs_file.exists() else {}

    out(
        f"{'shape':<12}{'runs':>9}{'failed':>8}{'runs/s':>9}{'p50':>8}{'p95':>8}{'p99':>8}  (ms, start -> result)"
    )
    for row in [*shapes, *([total_row] if total_row is not None else [])]:
        name = "all" if row is total_row else row["Name"]
        out(
            f"{name:<12}{int(row['Request Count']):>9,}{int(row['Failure Count']):>8,}"
            f"{float_of(row, 'Requests/s'):>9.1f}{float_of(row, '50%'):>8.0f}"
            f"{float_of(row, '95%'):>8.0f}{float_of(row, '99%'):>8.0f}"
        )
    requests = sum(int(row["Request Count"]) for row in shapes)
    failures = sum(int(row["Failure Count"]) for row in shapes)
    ratio = failures / requests if requests else 0.0
    rps = float_of(total_row, "Requests/s") if total_row is not None else 0.0
    lost = int(counts.get("lost", 0))
    out()
    out(f"requests/s: {rps:.1f}")
    out(f"failure ratio: {ratio:.4%} ({failures:,} of {requests:,} runs)")
    if total_row is not None:
        out(
            f"latency: p50 {float_of(total_row, '50%'):.0f} ms, p95 {float_of(total_row, '95%'):.0f} ms, "
            f"p99 {float_of(total_row, '99%'):.0f} ms"
        )
    out(f"lost runs: {lost}" + ("" if counts else " (locust wrote no run counts)"))
    problems = load_problems(
        has_counts=bool(counts),
        runs_file=runs_file,
        lost=lost,
        finished=requests,
        ratio=ratio,
        max_failure_ratio=max_failure_ratio,
    )
    if failures:
        for row in read_failures(csv_prefix):
            out(f"  {row['Occurrences']} x {row['Name']}: {row['Error']}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = load_parser(__doc__, "workflows", "seconds before a run counts as lost")
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    csv_prefix = prepare_csv_prefix(args.csv_prefix)
    workdir = Path(tempfile.mkdtemp(prefix="bullflow-loadtest-"))
    queue = f"loadtest-{uuid.uuid4().hex[:8]}"
    redis_proc: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[str]] = []
    locust_code: int | None = None
    try:
        redis_proc, redis_url = start_redis(workdir)
        workers = start_workers(redis_url, queue, args.workers, args.concurrency, workdir, BLUEPRINTS)
        out(
            f"redis-server on {redis_url}; {args.workers} workers on queue {queue} "
            f"(concurrency {args.concurrency} each); locust for {args.run_time}"
            + (" (step load)" if args.step else "")
        )
        locust_code = run_locust(locust_command(args, redis_url, queue, csv_prefix))
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
    finally:
        worker_codes = stop_workers(workers, workdir)
        if redis_proc is not None:
            stop([redis_proc], timeout=5)
        shutil.rmtree(workdir, ignore_errors=True)
    if locust_code is None:
        return 1
    out()
    problems = summarize(csv_prefix, args.max_failure_ratio)
    return verdict(problems, locust_code, worker_codes, csv_prefix)


if __name__ == "__main__":
    sys.exit(main())
