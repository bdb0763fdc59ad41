"""`make loadtest-http`: the ``http_api`` scenario (``loadtest/http_api.py``) against an HTTP API,
worker processes and a redis-server of its own, then a summary of the requests and the runs.

Starts a throwaway ``redis-server`` on a free loopback port, ``--workers`` worker processes
(``tests.integration.worker_main``, the ``nothing`` nodes; they load the blueprints the users
register from Redis) on a queue of their own, and the API (``python -m bullflow serve``) on a free
loopback port with a random bearer token; waits for ``/readyz``; runs locust headless for
``--run-time`` (defaults from ``loadtest/locust.conf``). Then it looks for lost runs through the
API -- the runs the users did not see finish, and every run still ``running`` or ``awaiting`` --
giving them ``--settle`` seconds to finish, checks that each blueprint was registered once
(one version), stops everything it started (also on Ctrl-C or an error) and prints requests/s,
the failure ratio, p50/p95/p99 of the runs (start request -> final status seen) and of the HTTP
requests, and the number of lost runs.

Exit status: 0, or 1 when a run was lost, the failure ratio (failed HTTP requests and runs over
all of them) is above ``--max-failure-ratio`` (0.1 %), nothing was run, or locust, the API or a
worker failed.

    python -m loadtest.http_run [--run-time 60s] [--users N] [--spawn-rate R] [--step] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from examples.distributed_demo import free_port, start_redis, stop

from .blueprints import BLUEPRINTS
from .common_run import (
    CONF,
    HERE,
    ROOT,
    float_of,
    load_parser,
    load_problems,
    locust_flags,
    log_tail,
    out,
    prepare_csv_prefix,
    read_failures,
    read_stats,
    run_locust,
    start_workers,
    stop_workers,
    subprocess_env,
    verdict,
)

SCENARIO = HERE / "http_api.py"
STEP_SHAPE = HERE / "step_shape.py"
FINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
TOKEN_ENV = "BULLFLOW_API_TOKEN"


class Api:
    """A client of the API this runner started (urllib; loopback)."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self.token = token

    def get(self, path: str, **params: Any) -> tuple[int, Any]:
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        request = urllib.request.Request(
            self.base_url + path + (f"?{query}" if query else ""),
            headers={"Authorization": f"Bearer {self.token}", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                return reply.status, json.loads(reply.read() or b"null")
        except urllib.error.HTTPError as err:
            body = err.read()
            try:
                return err.code, json.loads(body)
            except ValueError:
                return err.code, body.decode(errors="replace")

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.base_url + "/readyz", timeout=2) as reply:
                return bool(reply.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def runs(self, status: str | None = None) -> list[dict[str, Any]]:
        """Every run the API lists (with ``status``), following the cursors."""
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            code, body = self.get("/workflows/runs", status=status, limit=500, cursor=cursor)
            if code != 200:
                raise RuntimeError(f"GET /workflows/runs?status={status}: HTTP {code}: {body}")
            found += body["runs"]
            cursor = body.get("nextCursor")
            if not cursor:
                return found

    def status(self, run_id: str) -> str:
        code, body = self.get(f"/workflows/runs/{urllib.parse.quote(run_id)}/status", logLimit=0)
        if code == 404:
            return "unknown"
        if code != 200:
            return f"HTTP {code}"
        return str(body.get("status"))


def api_command(redis_url: str, queue: str, port: int) -> list[str]:
    """``bullflow serve`` on ``127.0.0.1:port``, without an access log (the token comes from
    ``BULLFLOW_API_TOKENS``, not the command line, which other users can read)."""
    return [
        *(sys.executable, "-m", "bullflow", "serve", "--host", "127.0.0.1", "--port", str(port)),
        *("--redis-url", redis_url, "--queue", queue, "--no-access-log"),
    ]


def start_api(redis_url: str, queue: str, token: str, workdir: Path) -> tuple[subprocess.Popen[bytes], Api]:
    """The API process, once ``/readyz`` answers 200. Its log goes to ``workdir/api.log``."""
    port = free_port()
    log = workdir / "api.log"
    with log.open("w") as handle:
        proc = subprocess.Popen(
            api_command(redis_url, queue, port),
            cwd=ROOT,
            env=subprocess_env(BULLFLOW_API_TOKENS=token),
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches only this script, which stops it
        )
    api = Api(f"http://127.0.0.1:{port}", token)
    deadline = time.monotonic() + 30
    while not api.ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop([proc], timeout=5)
            raise RuntimeError(f"the API did not become ready:\n{log_tail(log, 30)}")
        time.sleep(0.1)
    return proc, api


def locust_command(args: argparse.Namespace, base_url: str, csv_prefix: Path) -> list[str]:
    files = f"{SCENARIO},{STEP_SHAPE}" if args.step else str(SCENARIO)
    return [
        *(sys.executable, "-m", "locust", "--config", str(CONF), "-f", files),
        *("--host", base_url, "--csv", str(csv_prefix)),
        *locust_flags(
            args, ("run_time", "users", "spawn_rate", "run_timeout", "poll_interval", "stream_share")
        ),
    ]


def find_lost_runs(api: Api, unresolved: list[str], settle: float) -> tuple[list[str], list[str]]:
    """The runs without a final status after up to ``settle`` seconds: those the users did not
    see finish and those the API lists as running or awaiting. Returns (lost run ids, notes)."""
    notes: list[str] = []
    pending = set(unresolved)
    deadline = time.monotonic() + settle
    while True:
        open_runs = {run["runId"]: run["status"] for run in api.runs("running")}
        open_runs.update({run["runId"]: run["status"] for run in api.runs("awaiting")})
        statuses = {run_id: api.status(run_id) for run_id in sorted(pending - set(open_runs))}
        pending = {run_id for run_id, status in statuses.items() if status not in FINAL_STATUSES}
        pending |= set(open_runs)
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    for run_id in sorted(pending)[:5]:
        notes.append(f"  lost: run {run_id}: {open_runs.get(run_id) or statuses.get(run_id)}")
    return sorted(pending), notes


def check_registry(api: Api) -> list[str]:
    """Each blueprint registered once: the users registered the same content, so one version."""
    problems = []
    for blueprint in BLUEPRINTS:
        code, body = api.get(f"/workflows/{blueprint['id']}")
        if code != 200:
            problems.append(f"GET /workflows/{blueprint['id']}: HTTP {code}: {body}")
        elif body.get("versions") not in (None, [1]):
            problems.append(
                f"blueprint {blueprint['id']!r} has versions {body.get('versions')} (expected [1])"
            )
    return problems


def _line(name: str, row: dict[str, str] | None) -> str:
    return (
        f"{name:<44}{int(float_of(row, 'Request Count')):>9,}{int(float_of(row, 'Failure Count')):>8,}"
        f"{float_of(row, 'Requests/s'):>9.1f}{float_of(row, '50%'):>8.0f}"
        f"{float_of(row, '95%'):>8.0f}{float_of(row, '99%'):>8.0f}"
    )


def _percentiles(summary: dict[str, Any]) -> str:
    return f"p50 {summary['p50']:.0f} ms, p95 {summary['p95']:.0f} ms, p99 {summary['p99']:.0f} ms"


def summarize(csv_prefix: Path, lost: int, max_failure_ratio: float) -> list[str]:
    """Print the figures; returns what is wrong with them."""
    rows = read_stats(csv_prefix)
    runs_file = Path(f"{csv_prefix}_runs.json")
    if rows is None:
        return [f"locust wrote no stats ({csv_prefix}_stats.csv is missing)"]
    counts: dict[str, Any] = json.loads(runs_file.read_text()) if runs_file.exists() else {}
    out(f"{'request':<44}{'count':>9}{'failed':>8}{'per s':>9}{'p50':>8}{'p95':>8}{'p99':>8}  (ms)")
    runs = [row for row in rows if row["Type"] == "run"]
    http = [row for row in rows if row["Type"] not in ("run", "") and row["Name"] != "Aggregated"]
    for row in http:
        out(_line(f"{row['Type']} {row['Name']}", row))
    for row in runs:
        out(_line(f"run {row['Name']} (start -> final status)", row))

    summary = counts.get("summary", {})
    http_sum = summary.get("http", {"count": 0, "failures": 0, "rps": 0.0})
    run_sum = summary.get("run", {"count": 0, "failures": 0, "rps": 0.0})
    total = http_sum["count"] + run_sum["count"]
    failures = http_sum["failures"] + run_sum["failures"]
    ratio = failures / total if total else 0.0
    out()
    out(f"requests/s: {http_sum['rps']:.1f}")
    out(f"runs/s: {run_sum['rps']:.1f} ({counts.get('started', 0):,} started)")
    out(
        f"failure ratio: {ratio:.4%} ({failures:,} of {total:,} HTTP requests and runs; "
        f"{run_sum['failures']:,} of {run_sum['count']:,} runs)"
    )
    if run_sum["count"]:
        out(f"run latency: {_percentiles(run_sum)}")
    if http_sum["count"]:
        out(f"HTTP latency: {_percentiles(http_sum)}")
    out(f"lost runs: {lost}")
    problems = load_problems(
        has_counts=bool(counts),
        runs_file=runs_file,
        lost=lost,
        finished=run_sum["count"],
        ratio=ratio,
        max_failure_ratio=max_failure_ratio,
    )
    if failures:
        for row in read_failures(csv_prefix):
            out(f"  {row['Occurrences']} x {row['Method']} {row['Name']}: {row['Error'][:300]}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = load_parser(__doc__, "http_api", "seconds before a run counts as failed")
    parser.add_argument("--poll-interval", type=float, help="seconds between status requests (0.1)")
    parser.add_argument("--stream-share", type=float, help="share of runs followed by events (0.5)")
    parser.add_argument(
        "--settle", type=float, default=30.0, help="seconds unfinished runs get after locust stops"
    )
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    csv_prefix = prepare_csv_prefix(args.csv_prefix)
    workdir = Path(tempfile.mkdtemp(prefix="bullflow-loadtest-http-"))
    queue = f"loadtest-http-{uuid.uuid4().hex[:8]}"
    token = secrets.token_urlsafe(24)
    redis_proc: subprocess.Popen[bytes] | None = None
    api_proc: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[str]] = []
    worker_codes: list[int | None] = []
    locust_code: int | None = None
    lost: list[str] = []
    problems: list[str] = []
    notes: list[str] = []
    try:
        redis_proc, redis_url = start_redis(workdir)
        workers = start_workers(redis_url, queue, args.workers, args.concurrency, workdir)
        api_proc, api = start_api(redis_url, queue, token, workdir)
        out(
            f"redis-server on {redis_url}; {args.workers} workers on queue {queue} "
            f"(concurrency {args.concurrency} each); API on {api.base_url}; locust for {args.run_time}"
            + (" (step load)" if args.step else "")
        )
        locust_code = run_locust(
            locust_command(args, api.base_url, csv_prefix), env=subprocess_env(**{TOKEN_ENV: token})
        )
        runs_file = Path(f"{csv_prefix}_runs.json")
        counts = json.loads(runs_file.read_text()) if runs_file.exists() else {}
        if counts:
            lost, notes = find_lost_runs(api, list(counts.get("unresolved", [])), args.settle)
            problems += check_registry(api)
            listed = len(api.runs())
            if listed < int(counts.get("started", 0)):
                problems.append(f"the API lists {listed:,} runs; the users started {counts['started']:,}")
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        locust_code = None
    finally:
        if api_proc is not None:
            stop([api_proc], timeout=10)
            if api_proc.returncode not in (0, -signal.SIGTERM):
                sys.stderr.write(
                    f"the API exited with {api_proc.returncode}:\n{log_tail(workdir / 'api.log', 20)}\n"
                )
                problems.append(f"the API exited with {api_proc.returncode}")
        worker_codes = stop_workers(workers, workdir)
        if redis_proc is not None:
            stop([redis_proc], timeout=5)
        shutil.rmtree(workdir, ignore_errors=True)
    if locust_code is None:
        return 1
    out()
    problems = summarize(csv_prefix, len(lost), args.max_failure_ratio) + problems
    for note in notes:
        out(note)
    return verdict(problems, locust_code, worker_codes, csv_prefix)


if __name__ == "__main__":
    sys.exit(main())
