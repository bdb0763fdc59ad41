"""Scenario ``http_api``: the workflows of ``loadtest/workflows.py`` (a 20-node chain, a 20-wide
fan-out into an all-join, a 4-node diamond; weights 1/1/3), started and followed through the HTTP
API (``bullflow serve``) instead of Redis.

Each :class:`WorkflowApiUser` registers the blueprints on start (``POST /workflows``; the same
content registered again is the same version), then starts runs one at a time with a short pause
(``POST /workflows/{id}/execute-async``) and follows each to its final status: a share of them
(``--stream-share``, default half) by reading the server-sent events of
``GET /workflows/runs/{runId}/events`` (with the user's own session, ``stream=True``), the others by
polling ``GET /workflows/runs/{runId}/status`` every ``--poll-interval`` seconds.

Besides locust's statistics of the HTTP requests, each run is reported as a request event
``request_type="run"``, ``name`` = the blueprint id, ``response_time`` = start request -> final
status seen, in ms; it is a failure when the run did not complete, could not be started, its
event stream ended before a final status, or no final status came within ``--run-timeout``.

When locust quits, the final stats and failures are written to ``<csv prefix>_stats.csv`` and
``_failures.csv``, and this process's run counts plus the ids of the runs whose final status it
did not see (timed out, interrupted, stream cut) to ``<csv prefix>_runs.json``:
``loadtest/http_run.py`` asks the API about those afterwards to tell late runs from lost ones.

``make loadtest-http`` runs it (``loadtest/http_run.py``). By hand, with Redis, workers and the
API already running (loopback only):

    BULLFLOW_API_TOKEN=... locust --config loadtest/locust.conf -f loadtest/http_api.py \\
        --host http://127.0.0.1:PORT [--stream-share 0.5] [--poll-interval 0.1]
"""

from __future__ import annotations

import csv
import json
import logging
import os
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import gevent
import requests
from locust import HttpUser, between, events, task
from locust.env import Environment
from locust.exception import StopUser
from locust.stats import PERCENTILES_TO_REPORT, StatsCSV, StatsEntry

from loadtest.blueprints import BLUEPRINTS

__all__ = ["RunFailedError", "RunTimeoutError", "RunTracker", "WorkflowApiUser"]

logger = logging.getLogger(__name__)

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
FINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
TOKEN_ENV = "BULLFLOW_API_TOKEN"


class RunFailedError(Exception):
    """A run could not be started, finished other than ``completed``, or its event stream ended
    before a final status."""


class RunTimeoutError(Exception):
    """No final status was seen within ``--run-timeout``."""


@dataclass
class RunTracker:
    """What this process's users started and what became of it."""

    started: int = 0
    completed: int = 0
    failed: int = 0
    timed_out: int = 0
    interrupted: int = 0  # a user stopped (not gracefully) while it followed a run
    streamed: int = 0
    polled: int = 0
    unresolved: list[str] = field(default_factory=list)  # started, final status not seen


TRACKER = RunTracker()


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    parser.add_argument(  # on the parser itself: only there does locust know is_secret
        "--api-token",
        default=os.environ.get(TOKEN_ENV),
        is_secret=True,
        help=f"bearer token of the API (default: ${TOKEN_ENV})",
    )
    group = parser.add_argument_group("bullflow HTTP API")
    group.add_argument(
        "--run-timeout", type=float, default=30.0, help="seconds a run may take before it counts as failed"
    )
    group.add_argument(
        "--poll-interval", type=float, default=0.1, help="seconds between two status requests of a run"
    )
    group.add_argument(
        "--stream-share", type=float, default=0.5, help="share of the runs followed by server-sent events"
    )


def _summary(environment: Environment, http: bool) -> dict[str, Any]:
    """Count, failures, rate and percentiles of all HTTP requests (or all runs) together."""
    total = StatsEntry(environment.stats, "all", "")
    for entry in environment.stats.entries.values():
        if (entry.method != "run") == http:
            total.extend(entry)
    return {
        "count": total.num_requests,
        "failures": total.num_failures,
        "rps": total.total_rps,
        **{f"p{round(q * 100)}": total.get_response_time_percentile(q) for q in (0.5, 0.95, 0.99)},
    }


@events.quitting.add_listener
def _on_quitting(environment: Environment, **_: Any) -> None:
    counts: dict[str, Any] = asdict(TRACKER)
    counts["summary"] = {"http": _summary(environment, True), "run": _summary(environment, False)}
    logger.info("runs: %s", {k: v for k, v in counts.items() if k not in ("unresolved", "summary")})
    options = environment.parsed_options
    prefix = getattr(options, "csv_prefix", None) if options is not None else None
    if prefix:
        # locust's CSV writer refreshes its files once a second and may miss the runs that ended
        # while the users stopped: write the final figures now.
        final = StatsCSV(environment, PERCENTILES_TO_REPORT)
        with open(f"{prefix}_stats.csv", "w", newline="") as handle:
            final.requests_csv(csv.writer(handle))
        with open(f"{prefix}_failures.csv", "w", newline="") as handle:
            final.failures_csv(csv.writer(handle))
        Path(f"{prefix}_runs.json").write_text(json.dumps(counts) + "\n")
    if environment.runner is not None and not environment.runner.exceptions:
        # Failed and lost runs are judged by the runner (a failure ratio, a check after the
        # test), not by locust's exit code.
        environment.process_exit_code = 0


def sse_events(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    """``(event, data)`` of each event of a ``text/event-stream`` given as its lines (comments,
    ``id:`` and ``retry:`` fields skipped; ``data:`` lines of one event joined with newlines)."""
    name, data = "message", []
    for line in lines:
        if line == "":
            if data:
                yield name, "\n".join(data)
            name, data = "message", []
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if key == "event":
            name = value
        elif key == "data":
            data.append(value)
    if data:
        yield name, "\n".join(data)


def _close(resp: requests.Response) -> None:
    """Close a streamed response (one that failed to connect has no connection to close)."""
    if resp.raw is not None:
        resp.close()


class WorkflowApiUser(HttpUser):
    """Registers :data:`blueprints` on start, then runs them through the API (see the module).

    ``host`` is the API's base URL (``http://`` on the loopback interface)."""

    wait_time = between(0.005, 0.02)
    blueprints: ClassVar[Sequence[dict[str, Any]]] = BLUEPRINTS

    def on_start(self) -> None:
        url = urlsplit(self.host or "")
        if url.scheme != "http" or url.hostname not in LOOPBACK_HOSTS:
            raise ValueError(f"--host must be an http:// URL on the loopback interface, got {self.host!r}")
        options = self.environment.parsed_options
        token = getattr(options, "api_token", None) or os.environ.get(TOKEN_ENV)
        if not token:
            raise ValueError(f"no API token: set ${TOKEN_ENV} or pass --api-token")
        self.client.headers["Authorization"] = f"Bearer {token}"
        self.run_timeout = float(getattr(options, "run_timeout", None) or 30.0)
        self.poll_interval = float(getattr(options, "poll_interval", None) or 0.1)
        share = getattr(options, "stream_share", None)
        self.stream_share = 0.5 if share is None else float(share)
        for blueprint in self.blueprints:
            self.register(blueprint)

    def register(self, blueprint: dict[str, Any]) -> None:
        with self.client.post("/workflows", json=blueprint, name="/workflows", catch_response=True) as resp:
            if resp.status_code not in (200, 201):
                resp.failure(f"registering {blueprint['id']!r}: HTTP {resp.status_code}: {resp.text[:200]}")
                raise StopUser()
            body = resp.json()
            if body.get("id") != blueprint["id"] or body.get("unimplemented"):
                resp.failure(f"registering {blueprint['id']!r}: unexpected reply {body}")
                raise StopUser()

    @task(1)
    def chain(self) -> None:
        self.run_workflow("chain-20")

    @task(1)
    def fanout(self) -> None:
        self.run_workflow("fanout-20")

    @task(3)
    def diamond(self) -> None:
        self.run_workflow("diamond")

    def run_workflow(self, blueprint_id: str) -> None:
        """Start one run of ``blueprint_id``, follow it to its final status and report it."""
        stream = random.random() < self.stream_share
        began = time.perf_counter()
        deadline = time.monotonic() + self.run_timeout
        run_id: str | None = None
        final_seen = False
        error: Exception | None = None
        length = 0
        try:
            run_id = self.start_run(blueprint_id)
            TRACKER.started += 1
            if stream:
                TRACKER.streamed += 1
                view = self.follow_events(run_id, deadline)
            else:
                TRACKER.polled += 1
                view = self.poll_status(run_id, deadline)
            final_seen = True
            length = len(json.dumps(view))
            if view.get("status") != "completed":
                raise RunFailedError(f"{view.get('status')}: {view.get('reason') or 'no reason given'}")
            TRACKER.completed += 1
        except gevent.GreenletExit:
            TRACKER.interrupted += 1
            if run_id is not None:
                TRACKER.unresolved.append(run_id)
            raise
        except Exception as err:
            if isinstance(err, RunTimeoutError):
                TRACKER.timed_out += 1
            else:
                TRACKER.failed += 1
            if run_id is not None and not final_seen:
                TRACKER.unresolved.append(run_id)
            logger.warning("run %s of %s: %s", run_id or "(not started)", blueprint_id, err)
            error = err
        self.environment.events.request.fire(
            request_type="run",
            name=blueprint_id,
            response_time=(time.perf_counter() - began) * 1000,
            response_length=length,
            exception=error,
            context={"run_id": run_id, "follow": "events" if stream else "status"},
        )

    def start_run(self, blueprint_id: str) -> str:
        with self.client.post(
            f"/workflows/{blueprint_id}/execute-async",
            json={"input": {"shape": blueprint_id}},
            name=f"/workflows/{blueprint_id}/execute-async",
            catch_response=True,
        ) as resp:
            if resp.status_code != 202:
                message = f"HTTP {resp.status_code}: {resp.text[:200]}"
                resp.failure(message)
                raise RunFailedError(f"could not start a run of {blueprint_id!r}: {message}")
            run_id = resp.json().get("runId")
            if not isinstance(run_id, str) or not run_id:
                resp.failure(f"no runId in {resp.text[:200]}")
                raise RunFailedError(f"could not start a run of {blueprint_id!r}: no runId")
            return run_id

    def poll_status(self, run_id: str, deadline: float) -> dict[str, Any]:
        """``GET .../status`` until a final status; the status view. Failed requests are reported
        by locust and retried until ``deadline``."""
        last = "no status yet"
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RunTimeoutError(
                    f"no final status within {self.run_timeout:g} s (polling /status; {last})"
                )
            with self.client.get(
                f"/workflows/runs/{run_id}/status",
                params={"logLimit": 0},
                name="/workflows/runs/[runId]/status",
                timeout=max(1.0, remaining),
                catch_response=True,
            ) as resp:
                if resp.status_code == 200:
                    view = resp.json()
                    last = f"status {view.get('status')!r}"
                    if view.get("status") in FINAL_STATUSES:
                        return dict(view)
                else:
                    last = f"HTTP {resp.status_code}"
                    resp.failure(f"HTTP {resp.status_code}: {resp.text[:200]}")
            gevent.sleep(min(self.poll_interval, max(0.0, deadline - time.monotonic())))

    def follow_events(self, run_id: str, deadline: float) -> dict[str, Any]:
        """Read ``GET .../events`` until an ``event: status`` frame with a final status; that
        status view. A stream that ends (or breaks) before one is an error; one that does not
        open (not 200) is reported by locust and the run is polled instead."""
        remaining = max(1.0, deadline - time.monotonic())
        resp = self.client.get(
            f"/workflows/runs/{run_id}/events",
            name="/workflows/runs/[runId]/events",
            headers={"Accept": "text/event-stream"},
            stream=True,
            timeout=(5.0, remaining),
        )
        if resp.status_code != 200:
            _close(resp)
            return self.poll_status(run_id, deadline)
        last = "no status frame"
        try:
            with gevent.Timeout(remaining, False):
                lines = (line.decode("utf-8") for line in resp.iter_lines())  # the stream is UTF-8
                for event, data in sse_events(lines):
                    if event != "status":
                        continue
                    view = json.loads(data)
                    last = f"last status {view.get('status')!r}"
                    if view.get("status") in FINAL_STATUSES:
                        return dict(view)
                raise RunFailedError(f"the event stream ended before a final status ({last})")
            raise RunTimeoutError(f"no final status within {self.run_timeout:g} s (reading /events; {last})")
        except requests.RequestException as err:
            if time.monotonic() >= deadline:
                raise RunTimeoutError(
                    f"no final status within {self.run_timeout:g} s (reading /events; {last})"
                ) from None
            raise RunFailedError(f"the event stream broke ({last}): {err}") from None
        finally:
            _close(resp)
