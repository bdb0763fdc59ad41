"""`make demo`: the content-moderation example (blueprint 400 with subflows 401-403) run 1,000
times on two worker processes.

Starts a throwaway ``redis-server`` on a free loopback port, two ``bullflow worker`` processes
(``python -m bullflow.cli worker examples.llm_nodes:REGISTRY ...``), then starts the runs through
:class:`bullflow.client.Client` (at most ``--in-flight`` at a time), shows progress on stderr and
prints throughput, run latency (start -> result) and one run's final output. Everything it started
is stopped on the way out, also on Ctrl-C or an error. Exit status 1 if any run did not complete.

    python -m examples.distributed_demo [--runs 1000] [--workers 2] [--concurrency 20] [--in-flight 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bullflow import WorkflowResult
from bullflow.client import Client

from .declarative import USE_CASES, load_example_blueprints

ROOT = Path(__file__).resolve().parents[1]
CASE = USE_CASES["content-moderation"]
BANNER = "--- CONTENT MODERATION COMPLETE ---"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (`make demo` installs it with apt-get)")
    port = free_port()
    proc = subprocess.Popen(
        [
            *(binary, "--port", str(port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--dir", str(workdir)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C reaches only this script, which stops it
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("redis-server did not start")
        time.sleep(0.05)


@dataclass
class WorkerProcess:
    proc: subprocess.Popen[bytes]
    log: Path

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while "worker ready" not in self.log.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker {self.proc.pid} did not start:\n{self.log.read_text()}")
            time.sleep(0.05)


def start_worker(redis_url: str, concurrency: int, log: Path) -> WorkerProcess:
    with log.open("w") as handle:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "bullflow.cli", "worker", "examples.llm_nodes:REGISTRY"),
                *("--blueprints", "examples/blueprints", "--redis-url", redis_url),
                *("--concurrency", str(concurrency)),
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL,
            stderr=handle,
            start_new_session=True,
        )
    return WorkerProcess(proc, log)


def stop(procs: list[subprocess.Popen[bytes]], timeout: float = 15) -> None:
    """SIGTERM each (workers finish their nodes), wait, kill what is left."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Report:
    results: list[WorkflowResult] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


class Progress:
    """A plain-text progress bar on stderr, redrawn in place with ``\\r``."""

    def __init__(self, total: int, width: int = 40) -> None:
        self.total = total
        self.width = width
        self.done = 0
        self.started = time.monotonic()
        self._drawn = 0.0

    def advance(self) -> None:
        self.done += 1
        now = time.monotonic()
        if now - self._drawn >= 0.1 or self.done == self.total:
            self._drawn = now
            self.draw()

    def draw(self) -> None:
        filled = self.width * self.done // max(1, self.total)
        elapsed = time.monotonic() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        bar = "#" * filled + "-" * (self.width - filled)
        sys.stderr.write(
            f"\r  [{bar}] {self.done:>5}/{self.total} runs  {rate:6.0f} runs/s  {elapsed:5.1f} s"
        )
        sys.stderr.flush()

    def close(self) -> None:
        self.draw()
        sys.stderr.write("\n")
        sys.stderr.flush()


async def drive(redis_url: str, runs: int, in_flight: int, timeout: float) -> Report:
    report = Report()
    limit = asyncio.Semaphore(in_flight)
    async with Client(blueprints=load_example_blueprints(), connection=redis_url) as client:
        progress = Progress(runs)

        async def one() -> WorkflowResult:
            handle = await client.start(CASE.entry, CASE.initial_context)
            return await handle.result(timeout)

        async def timed() -> None:
            async with limit:
                began = time.perf_counter()
                try:
                    result = await asyncio.wait_for(one(), timeout)  # start() included
                except Exception as err:
                    report.errors.append(f"{type(err).__name__}: {err}")
                else:
                    report.latencies.append(time.perf_counter() - began)
                    report.results.append(result)
                progress.advance()

        started = time.perf_counter()
        try:
            await asyncio.gather(*(timed() for _ in range(runs)))
        finally:
            report.seconds = time.perf_counter() - started
            progress.close()
    return report


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))] if ordered else float("nan")


def print_report(report: Report, runs: int) -> bool:
    completed = [r for r in report.results if r.status == "completed"]
    not_completed = [r for r in report.results if r.status != "completed"]
    nodes = sum(sum(1 for key in r.context if key.startswith("_outputs.")) for r in report.results)
    seconds = report.seconds or float("nan")
    print(f"{len(report.results):,} of {runs:,} runs finished in {report.seconds:.2f} s")
    print(f"  throughput   {len(report.results) / seconds:8.0f} runs/s   {nodes / seconds:8.0f} nodes/s")
    print(
        f"  latency      p50 {percentile(report.latencies, 0.50) * 1000:6.0f} ms   "
        f"p99 {percentile(report.latencies, 0.99) * 1000:6.0f} ms   (start -> result)"
    )
    print(f"  completed    {len(completed):,}   failed {len(not_completed) + len(report.errors):,}")
    for result in not_completed[:3]:
        messages = "; ".join(e.message for e in result.errors) or "no errors recorded"
        print(f"    run {result.run_id}: {result.status}: {messages}")
    for error in report.errors[:3]:
        print(f"    {error}")
    ok = len(completed) == runs
    if completed:
        sample = completed[0]
        output = str(sample.context.get("final_output", ""))
        print(f"\nrun {sample.run_id} took route {sample.context.get('_outputs.triage_post')}; final output:")
        print(output)
        if not output.startswith(BANNER):
            print(f"unexpected final output (should begin {BANNER!r})", file=sys.stderr)
            ok = False
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=20, help="jobs at once per worker")
    parser.add_argument("--in-flight", type=int, default=100, help="runs started but not finished, at most")
    parser.add_argument("--timeout", type=float, default=60, help="seconds one run may take")
    args = parser.parse_args(argv)

    # SIGTERM ends the demo like Ctrl-C does, through the cleanup below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = Path(tempfile.mkdtemp(prefix="bullflow-demo-"))
    redis_proc: subprocess.Popen[bytes] | None = None
    workers: list[WorkerProcess] = []
    ok = False
    try:
        redis_proc, redis_url = start_redis(workdir)
        for i in range(args.workers):
            workers.append(start_worker(redis_url, args.concurrency, workdir / f"worker-{i}.log"))
        for worker in workers:
            worker.wait_ready()
        pids = ", ".join(str(w.proc.pid) for w in workers)
        print(
            f"redis-server on {redis_url} (pid {redis_proc.pid}); {args.workers} workers "
            f"(pids {pids}, concurrency {args.concurrency} each)"
        )
        print(
            f"starting {args.runs:,} runs of {CASE.name} (blueprint {CASE.entry}), at most {args.in_flight} in flight"
        )
        sys.stdout.flush()
        report = asyncio.run(drive(redis_url, args.runs, args.in_flight, args.timeout))
        ok = print_report(report, args.runs)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
    finally:
        stop([w.proc for w in workers])
        codes = [w.proc.returncode for w in workers]
        if redis_proc is not None:
            stop([redis_proc], timeout=5)
        failed_workers = [w for w, code in zip(workers, codes, strict=True) if code != 0]
        for worker in failed_workers:
            tail = "".join(worker.log.read_text().splitlines(keepends=True)[-10:])
            print(f"worker {worker.proc.pid} exited with {worker.proc.returncode}:\n{tail}", file=sys.stderr)
        print(f"stopped {len(workers)} workers (exit codes {codes}) and redis-server")
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
