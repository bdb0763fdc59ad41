"""What the load-test runners (``loadtest/run.py``, ``loadtest/http_run.py``) share: the worker
processes they start, the headless locust process, the CSV prefix, and reading locust's stats.

Throwaway servers come from :mod:`examples.distributed_demo` (``start_redis``, ``stop``)."""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from examples.distributed_demo import stop

__all__ = [
    "CONF",
    "HERE",
    "ROOT",
    "float_of",
    "load_parser",
    "load_problems",
    "locust_flags",
    "log_tail",
    "out",
    "prepare_csv_prefix",
    "read_failures",
    "read_stats",
    "run_locust",
    "start_workers",
    "stop_workers",
    "subprocess_env",
]

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
CONF = HERE / "locust.conf"


def load_parser(doc: str | None, csv_name: str, run_timeout_help: str) -> argparse.ArgumentParser:
    """The options both load runners take (locust's run time, users, spawn rate and step shape;
    the worker processes; the CSV prefix and the failure bar); a runner adds its own."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0] if doc else None)
    parser.add_argument("--run-time", default="60s", help="locust --run-time (e.g. 60s, 5s, 2m)")
    parser.add_argument("--users", type=int, help="concurrent users (default: locust.conf)")
    parser.add_argument("--spawn-rate", type=float, help="users started per second (default: locust.conf)")
    parser.add_argument("--step", action="store_true", help="step load (loadtest/step_shape.py)")
    parser.add_argument("--run-timeout", type=float, help=run_timeout_help)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=20, help="jobs at once per worker")
    parser.add_argument("--csv-prefix", type=Path, default=ROOT / ".loadtest" / csv_name)
    parser.add_argument("--max-failure-ratio", type=float, default=0.001)
    return parser


def out(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment of a child: this one with the repository on ``PYTHONPATH``, plus ``extra``."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(ROOT) + (os.pathsep + path if path else ""), **extra}


def log_tail(path: Path, lines: int = 10) -> str:
    try:
        return "".join(path.read_text().splitlines(keepends=True)[-lines:])
    except OSError:
        return ""


def start_workers(
    redis_url: str,
    queue: str,
    count: int,
    concurrency: int,
    workdir: Path,
    blueprints: Sequence[Any] = (),
) -> list[subprocess.Popen[str]]:
    """``count`` worker processes (``tests.integration.worker_main``, the ``nothing`` nodes of
    ``tests.integration.nodes``) on ``queue``, each knowing ``blueprints`` (runs of other
    blueprints load their graphs from Redis); returns once each printed ``ready``. Their stderr
    goes to ``workdir/worker-<i>.log``."""
    blueprint_file = workdir / "blueprints.json"
    blueprint_file.write_text(json.dumps(list(blueprints)))
    procs: list[subprocess.Popen[str]] = []
    for i in range(count):
        with (workdir / f"worker-{i}.log").open("w") as log:
            procs.append(
                subprocess.Popen(
                    [
                        *(sys.executable, "-m", "tests.integration.worker_main"),
                        *("--redis-url", redis_url, "--queue", queue),
                        *("--blueprints", str(blueprint_file), "--concurrency", str(concurrency)),
                    ],
                    cwd=ROOT,
                    env=subprocess_env(),
                    stdout=subprocess.PIPE,
                    stderr=log,
                    text=True,
                    start_new_session=True,  # Ctrl-C reaches only the runner, which stops them
                )
            )
    for i, proc in enumerate(procs):
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError(
                f"worker {proc.pid} did not start:\n{log_tail(workdir / f'worker-{i}.log', 50)}"
            )
    return procs


def stop_workers(workers: list[subprocess.Popen[str]], workdir: Path) -> list[int | None]:
    """Stop the workers (SIGTERM: they finish their nodes); their exit codes. The log tail of
    each that exited non-zero goes to stderr."""
    stop(workers)  # type: ignore[arg-type]
    codes = [w.returncode for w in workers]
    for w in workers:
        if w.stdout is not None:
            w.stdout.close()
    for i, code in enumerate(codes):
        if code != 0:
            sys.stderr.write(f"worker {i} exited with {code}:\n{log_tail(workdir / f'worker-{i}.log')}\n")
    return codes


def locust_flags(args: Any, names: Sequence[str]) -> list[str]:
    """``--flag value`` for each attribute of ``args`` in ``names`` that is set (``run_time`` ->
    ``--run-time``)."""
    flags: list[str] = []
    for name in names:
        value = getattr(args, name, None)
        if value is not None:
            flags += ["--" + name.replace("_", "-"), str(value)]
    return flags


def run_locust(command: list[str], env: dict[str, str] | None = None) -> int:
    """Run locust to its end; its exit code. On Ctrl-C or SIGTERM locust gets SIGINT (it stops
    its users and writes its stats) before the exception goes on."""
    proc = subprocess.Popen(command, cwd=ROOT, env=env or subprocess_env(), start_new_session=True)
    try:
        return proc.wait()
    except BaseException:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise


def prepare_csv_prefix(prefix: Path) -> Path:
    """The absolute prefix, its directory made (``.loadtest/`` of the repository ignored by git)
    and the files of an earlier run with that prefix removed."""
    prefix = prefix.resolve()
    prefix.parent.mkdir(parents=True, exist_ok=True)
    if prefix.parent == ROOT / ".loadtest":
        (prefix.parent / ".gitignore").write_text("*\n")
    for stale in prefix.parent.glob(f"{prefix.name}_*"):
        stale.unlink()
    return prefix


def float_of(row: dict[str, str] | None, column: str) -> float:
    if row is None:
        return float("nan")
    try:
        return float(row[column])
    except (KeyError, ValueError):
        return float("nan")


def read_stats(prefix: Path) -> list[dict[str, str]] | None:
    """The rows of ``<prefix>_stats.csv`` (None when locust wrote none)."""
    stats_file = Path(f"{prefix}_stats.csv")
    if not stats_file.exists():
        return None
    with stats_file.open(newline="") as handle:
        return list(csv.DictReader(handle))


def load_problems(
    *,
    has_counts: bool,
    runs_file: Path,
    lost: int,
    finished: int,
    ratio: float,
    max_failure_ratio: float,
) -> list[str]:
    """What makes a load run fail (both runners): no run counts, a lost run, no finished run, or
    too many failures."""
    problems: list[str] = []
    if not has_counts:
        problems.append(f"{runs_file} is missing")
    if lost:
        problems.append(f"{lost} runs were lost")
    if finished == 0:
        problems.append("no run finished")
    if ratio > max_failure_ratio:
        problems.append(f"failure ratio {ratio:.4%} is above {max_failure_ratio:.4%}")
    return problems


def verdict(problems: list[str], locust_code: int, worker_codes: Sequence[int | None], prefix: Path) -> int:
    """The exit code of a load run (both runners): 1 with the problems printed when the run found
    any, locust failed or a worker exited uncleanly; 0 otherwise."""
    problems = list(problems)
    if locust_code != 0:
        problems.append(f"locust exited with {locust_code}")
    if any(code != 0 for code in worker_codes):
        problems.append(f"worker exit codes {list(worker_codes)}")
    out(f"stats: {prefix}_stats.csv")
    if problems:
        out("FAILED: " + "; ".join(problems))
        return 1
    return 0


def read_failures(prefix: Path, limit: int = 5) -> list[dict[str, str]]:
    failures_file = Path(f"{prefix}_failures.csv")
    if not failures_file.exists():
        return []
    with failures_file.open(newline="") as handle:
        return list(csv.DictReader(handle))[:limit]
