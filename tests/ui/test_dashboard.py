"""The dashboard (``/ui``) in a real browser: headless Debian Chromium driven by Playwright, against
a live API process (``bullflow serve``) and a real worker process (``bullflow worker``) on the
session redis-server.

One API and one worker serve the whole module (their own queue; blueprint ids carry the queue name,
because the run index is shared by every test of the session). Each test gets a fresh browser
context, so its sessionStorage (the token) starts empty.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# A screenshot of a run page goes here (to look at the layout); default: the test's tmp_path.
SCREENSHOT_ENV = "BULLFLOW_UI_SCREENSHOT"

# The fills of style.css (computed style of the DAG's rects).
FILLS = {
    "pending": "rgb(156, 163, 175)",
    "queued": "rgb(147, 197, 253)",
    "running": "rgb(37, 99, 235)",
    "completed": "rgb(22, 163, 74)",
    "failed": "rgb(220, 38, 38)",
    "skipped": "rgb(229, 231, 235)",
    "awaiting": "rgb(245, 158, 11)",
    "cancelled": "rgb(71, 85, 105)",
}

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian chromium (/usr/bin/chromium) is not installed: `make test` installs it",
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(check: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)


@dataclass
class Service:
    """The API (``url``) and a worker process on ``queue``, and an API client with the token."""

    url: str
    token: str
    queue: str
    api: httpx.Client
    logs: list[Path]

    def log_text(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()}" for log in self.logs)

    def register(self, blueprint: dict[str, Any]) -> None:
        response = self.api.post("/workflows", json=blueprint)
        assert response.status_code == 201, response.text
        assert response.json()["unimplemented"] == [], response.text

    def execute(self, blueprint_id: str, status: str) -> dict[str, Any]:
        """Run the blueprint to its end; its status view."""
        response = self.api.post(f"/workflows/{blueprint_id}/execute", json={"input": {}, "timeout": 15})
        assert response.status_code == 200, response.text
        view: dict[str, Any] = response.json()
        assert view["status"] == status, view
        return view

    def status(self, run_id: str) -> dict[str, Any]:
        response = self.api.get(f"/workflows/runs/{run_id}/status")
        assert response.status_code == 200, response.text
        view: dict[str, Any] = response.json()
        return view


@pytest.fixture(scope="module")
def service(redis_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    queue = f"ui{uuid.uuid4().hex[:10]}"
    token = f"ui-token-{uuid.uuid4().hex}"
    port = _free_port()
    workdir = tmp_path_factory.mktemp("ui")
    # The token goes by the environment (an option would show in the process list).
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BULLFLOW_API_TOKENS": token}
    logs = [workdir / "api.log", workdir / "worker.log"]
    commands = [
        [
            sys.executable,
            "-m",
            "bullflow",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--redis-url",
            redis_server,
            "--queue",
            queue,
        ],
        [
            sys.executable,
            "-m",
            "bullflow",
            "worker",
            "tests.integration.nodes:REGISTRY",
            "--redis-url",
            redis_server,
            "--queue",
            queue,
            "--concurrency",
            "4",
        ],
    ]
    procs: list[subprocess.Popen[bytes]] = []
    for command, log in zip(commands, logs, strict=True):
        with log.open("wb") as handle:
            procs.append(
                subprocess.Popen(command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)
            )
    url = f"http://127.0.0.1:{port}"
    api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    service = Service(url, token, queue, api, logs)
    try:

        def api_ready() -> bool:
            for proc, log in zip(procs, logs, strict=True):
                if proc.poll() is not None:
                    raise AssertionError(f"{log.stem} exited ({proc.returncode}):\n{service.log_text()}")
            try:
                return api.get("/readyz").status_code == 200
            except httpx.TransportError:
                return False

        _wait_for(api_ready, "the API answering /readyz")
        _wait_for(lambda: "worker ready" in logs[1].read_text(), "the worker being ready")
        yield service
    finally:
        api.close()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@dataclass
class Runs:
    """Finished runs of the module: ``branchy`` completed with an untaken branch (skipped nodes),
    ``broken`` failed in one node (its successor never ran), ``loop`` ran a loop three times."""

    branchy: dict[str, Any]
    broken: dict[str, Any]
    loop: dict[str, Any]
    blueprints: dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def runs(service: Service) -> Runs:
    branchy: dict[str, Any] = {
        "id": f"ui-branchy-{service.queue}",
        "nodes": [
            {"id": "start", "uses": "echo"},
            {"id": "decide", "uses": "route", "params": {"action": "left"}},
            {"id": "left", "uses": "echo"},
            {"id": "right", "uses": "echo"},
            {"id": "after_right", "uses": "echo"},
            {"id": "join", "uses": "echo", "config": {"joinStrategy": "any"}},
        ],
        "edges": [
            {"source": "start", "target": "decide"},
            {"source": "decide", "target": "left", "action": "left"},
            {"source": "decide", "target": "right", "action": "right"},
            {"source": "right", "target": "after_right"},
            {"source": "left", "target": "join"},
            {"source": "after_right", "target": "join"},
        ],
    }
    broken: dict[str, Any] = {
        "id": f"ui-broken-{service.queue}",
        "nodes": [
            {"id": "fetch", "uses": "echo"},
            {"id": "explode", "uses": "boom", "params": {"message": "kaboom <b>not bold</b>"}},
            {"id": "never", "uses": "echo"},
            {"id": "side", "uses": "echo"},
        ],
        "edges": [
            {"source": "fetch", "target": "explode"},
            {"source": "explode", "target": "never"},
            {"source": "fetch", "target": "side"},
        ],
    }
    loop: dict[str, Any] = {
        "id": f"ui-loop-{service.queue}",
        "nodes": [
            {"id": "init", "uses": "setter", "params": {"values": {"counter": 0}}},
            {"id": "body", "uses": "increment", "config": {"joinStrategy": "any"}},
            {"id": "check", "uses": "loop-controller", "params": {"condition": "counter < 3"}},
            {"id": "done", "uses": "echo"},
        ],
        "edges": [
            {"source": "init", "target": "body"},
            {"source": "body", "target": "check"},
            {"source": "check", "target": "body", "action": "continue"},
            {"source": "check", "target": "done", "action": "break"},
        ],
    }
    for blueprint in (branchy, broken, loop):
        service.register(blueprint)
    return Runs(
        branchy=service.execute(branchy["id"], "completed"),
        broken=service.execute(broken["id"], "failed"),
        loop=service.execute(loop["id"], "completed"),
        blueprints={"branchy": branchy, "broken": broken, "loop": loop},
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    expect.set_options(timeout=15_000)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(15_000)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(context: BrowserContext, service: Service) -> Iterator[Page]:
    """A page of a context signed in with the token (sessionStorage); page errors fail the test."""
    context.add_init_script(f"sessionStorage.setItem('bullflow.token', {json.dumps(service.token)})")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    yield page
    assert not errors, errors


def _dag(page: Page) -> dict[str, tuple[str, str, str]]:
    """``nodeId -> (data-status, class, computed fill)`` of the DAG's node rects."""
    rows = page.eval_on_selector_all(
        "svg.dag rect[data-node-id]",
        "rects => rects.map(r => [r.dataset.nodeId, r.dataset.status, r.getAttribute('class'),"
        " getComputedStyle(r).fill])",
    )
    found = {row[0]: (row[1], row[2], row[3]) for row in rows}
    assert len(found) == len(rows), f"a node is drawn twice: {rows}"
    return found


def _expect_dag(page: Page, expected: dict[str, str]) -> None:
    drawn = _dag(page)
    assert set(drawn) == set(expected), drawn
    for node_id, status in expected.items():
        assert drawn[node_id] == (status, f"status-{status}", FILLS[status]), (node_id, drawn[node_id])


def test_finished_runs_show_every_node_in_the_colour_of_its_status(
    page: Page, service: Service, runs: Runs, tmp_path: Path
) -> None:
    expectations = {
        "branchy": {
            "start": "completed",
            "decide": "completed",
            "left": "completed",
            "right": "skipped",
            "after_right": "skipped",
            "join": "completed",
        },
        "broken": {"fetch": "completed", "explode": "failed", "never": "pending", "side": "completed"},
        "loop": {"init": "completed", "body": "completed", "check": "completed", "done": "completed"},
    }
    for name, view in (("loop", runs.loop), ("branchy", runs.branchy), ("broken", runs.broken)):
        blueprint = runs.blueprints[name]
        page.goto(f"{service.url}/ui/#/runs/{view['runId']}")
        expect(page.locator("#run-status")).to_have_attribute("data-status", view["status"])
        expect(page.locator("svg.dag rect[data-node-id]")).to_have_count(len(blueprint["nodes"]))
        # The DAG shows what the API reports for the run, and that is what the run did.
        reported = {task["nodeId"]: task["status"] for task in view["tasks"]}
        assert reported == expectations[name], reported
        _expect_dag(page, expectations[name])
        expect(page.locator("svg.dag path.edge")).to_have_count(len(blueprint["edges"]))
        expect(page.locator("#cancel-run")).to_be_hidden()
        expect(page.locator("#resume-run")).to_be_hidden()
        # The loop's edge back to its body is drawn as a back edge (ignored by the layering).
        back = page.locator("svg.dag path.back-edge")
        if name == "loop":
            expect(back).to_have_count(1)
            expect(back).to_have_attribute("data-source", "check")
            expect(back).to_have_attribute("data-target", "body")
        else:
            expect(back).to_have_count(0)

    # Node details of the failed node: its error, attempts and timings; run data is text, not HTML.
    page.locator("svg.dag .dag-node", has=page.locator("rect[data-node-id='explode']")).click()
    error = page.locator("#node-error")
    expect(error).to_contain_text("kaboom <b>not bold</b>")
    assert error.locator("b").count() == 0
    expect(page.locator("#node-detail")).to_contain_text("Attempts")
    expect(page.locator("#run-log li[data-log-type='node-failed']")).to_contain_text("explode")
    screenshot = Path(os.environ.get(SCREENSHOT_ENV) or tmp_path / "run-page.png")
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(screenshot), full_page=True)


def test_a_running_run_is_cancelled_with_the_cancel_button(page: Page, service: Service) -> None:
    blueprint = {
        "id": f"ui-slow-{service.queue}",
        "nodes": [
            {"id": "nap", "uses": "slow", "params": {"seconds": 30}},
            {"id": "after", "uses": "echo"},
        ],
        "edges": [{"source": "nap", "target": "after"}],
    }
    service.register(blueprint)
    response = service.api.post(f"/workflows/{blueprint['id']}/execute-async", json={"input": {}})
    assert response.status_code == 202, response.text
    run_id = response.json()["runId"]

    page.goto(f"{service.url}/ui/#/runs/{run_id}")
    expect(page.locator("#run-status")).to_have_attribute("data-status", "running")
    # Live updates (server-sent events) turn the node blue once a worker runs it.
    expect(page.locator("rect[data-node-id='nap']")).to_have_attribute("data-status", "running")
    expect(page.locator("rect[data-node-id='after']")).to_have_attribute("data-status", "pending")
    page.locator("#cancel-run").click()
    expect(page.locator("#run-status")).to_have_attribute("data-status", "cancelled")
    expect(page.locator("#run-status")).to_have_text("cancelled")
    expect(page.locator("#cancel-run")).to_be_hidden()
    assert service.status(run_id)["status"] == "cancelled"
    assert _dag(page)["after"][0] == "pending"


def test_an_awaiting_run_is_resumed_with_the_resume_button(page: Page, service: Service) -> None:
    blueprint = {
        "id": f"ui-approve-{service.queue}",
        "nodes": [
            {"id": "prepare", "uses": "echo"},
            {"id": "approval", "uses": "wait"},
            {"id": "ship", "uses": "echo"},
            {"id": "discard", "uses": "echo"},
        ],
        "edges": [
            {"source": "prepare", "target": "approval"},
            {"source": "approval", "target": "ship", "action": "approve"},
            {"source": "approval", "target": "discard", "action": "reject"},
        ],
    }
    service.register(blueprint)
    run_id = service.execute(blueprint["id"], "awaiting")["runId"]

    page.goto(f"{service.url}/ui/#/runs/{run_id}")
    expect(page.locator("#run-status")).to_have_attribute("data-status", "awaiting")
    _expect_dag(
        page, {"prepare": "completed", "approval": "awaiting", "ship": "pending", "discard": "pending"}
    )
    expect(page.locator("#cancel-run")).to_be_hidden()
    page.locator("#resume-run").click()
    page.select_option("#resume-node", "approval")
    page.fill("#resume-payload", '{"approvedBy": "<ui test>"}')
    page.fill("#resume-action", "approve")
    page.locator("#resume-box button[type='submit']").click()
    expect(page.locator("#run-status")).to_have_attribute("data-status", "completed")
    _expect_dag(
        page, {"prepare": "completed", "approval": "completed", "ship": "completed", "discard": "skipped"}
    )
    expect(page.locator("#resume-run")).to_be_hidden()
    page.locator("svg.dag .dag-node", has=page.locator("rect[data-node-id='approval']")).click()
    expect(page.locator("#node-output")).to_contain_text('"approvedBy": "<ui test>"')


def test_the_run_page_follows_a_run_live(page: Page, service: Service) -> None:
    """The page is opened while the first node runs; the rest arrives by server-sent events."""
    blueprint = {
        "id": f"ui-live-{service.queue}",
        "nodes": [
            {"id": "nap", "uses": "slow", "params": {"seconds": 3}},
            {"id": "after", "uses": "echo"},
        ],
        "edges": [{"source": "nap", "target": "after"}],
    }
    service.register(blueprint)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    run_id = service.api.post(f"/workflows/{blueprint['id']}/execute-async", json={}).json()["runId"]
    page.goto(f"{service.url}/ui/#/runs/{run_id}")
    expect(page.locator("rect[data-node-id='nap']")).to_have_attribute("data-status", "running")
    expect(page.locator("#cancel-run")).to_be_visible()
    expect(page.locator("#run-status")).to_have_attribute("data-status", "completed")
    _expect_dag(page, {"nap": "completed", "after": "completed"})
    expect(page.locator("#cancel-run")).to_be_hidden()
    expect(page.locator("#run-log li[data-log-type='run-completed']")).to_have_count(1)
    status_reads = [url for url in requests if url.endswith(f"/workflows/runs/{run_id}/status")]
    assert any(url.endswith(f"/workflows/runs/{run_id}/events") for url in requests), requests
    assert len(status_reads) <= 2, status_reads  # the first view, and one read when the stream ends


def test_the_runs_list_shows_the_runs_and_filters_them_by_status(
    page: Page, service: Service, runs: Runs
) -> None:
    completed, failed = runs.branchy["runId"], runs.broken["runId"]
    table = page.locator("#runs-table")

    def listed() -> dict[str, str]:
        """The runs shown once the newest request is answered (``aria-busy`` false)."""
        expect(table).to_have_attribute("aria-busy", "false")
        found = table.locator("tr[data-run-id]").evaluate_all(
            "rows => rows.map(r => [r.dataset.runId, r.dataset.status])"
        )
        return {run_id: status for run_id, status in found}

    def reported(**params: str) -> dict[str, str]:
        response = service.api.get("/workflows/runs", params={"q": service.queue, **params})
        assert response.status_code == 200, response.text
        return {run["runId"]: run["status"] for run in response.json()["runs"]}

    # Searching for the module's queue name (part of its blueprint ids) shows only its runs (the
    # other tests of the module may have added some).
    page.goto(f"{service.url}/ui/#/runs?q={service.queue}")
    shown = listed()
    assert shown == reported(), shown
    assert shown[completed] == "completed" and shown[failed] == "failed", shown
    for run_id in shown:
        assert service.queue in table.locator(f"tr[data-run-id='{run_id}']").inner_text()

    page.select_option("#filter-status", "failed")
    assert listed() == {failed: "failed"} == reported(status="failed")
    assert "status=failed" in page.url

    page.select_option("#filter-status", "completed")
    shown = listed()
    assert shown == reported(status="completed")
    assert completed in shown and set(shown.values()) == {"completed"}, shown

    page.select_option("#filter-status", "")
    page.select_option("#filter-blueprint", runs.blueprints["broken"]["id"])
    assert listed() == {failed: "failed"}

    # Paging: two runs a page; Next and Previous follow the API's cursors.
    everything = list(reported())
    assert len(everything) >= 3, everything
    page.goto(f"{service.url}/ui/#/runs?q={service.queue}&limit=2")
    assert list(listed()) == everything[:2]
    expect(page.locator("#runs-prev")).to_be_disabled()
    page.locator("#runs-next").click()
    assert list(listed()) == everything[2:4]
    page.locator("#runs-prev").click()
    assert list(listed()) == everything[:2]

    # A run's link opens its page.
    newest = everything[0]
    table.locator(f"tr[data-run-id='{newest}'] a").click()
    expect(page.locator("#run-status")).to_have_attribute("data-status", service.status(newest)["status"])
    assert page.url.endswith(f"#/runs/{newest}")


def test_queue_and_worker_panels_show_what_the_api_reports(page: Page, service: Service, runs: Runs) -> None:
    page.goto(f"{service.url}/ui/")
    queue = page.locator(f"#queues-panel [data-queue='{service.queue}']")
    expect(queue).to_be_visible()
    for count in ("waiting", "active", "delayed", "failed", "completed"):
        expect(queue.locator(f"[data-count='{count}'] dd")).to_have_text(re.compile(r"^\d+$"))
    expect(page.locator("#queues-panel svg.throughput")).to_be_visible()
    workers = service.api.get("/workers").json()["workers"]
    mine = [w for w in workers if w["queue"] == service.queue]
    assert mine, workers
    for worker in mine:
        expect(page.locator(f"#workers-list li[data-worker-id='{worker['id']}']")).to_be_visible()


def test_a_refused_token_brings_the_token_prompt_back(context: BrowserContext, service: Service) -> None:
    page = context.new_page()  # no token in sessionStorage
    page.goto(f"{service.url}/ui/")
    dialog = page.locator("#token-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#token-error")).to_be_hidden()

    page.fill("#token-input", "not-the-token")
    page.click("#token-submit")
    expect(dialog).to_be_visible()  # the API answered 401
    expect(page.locator("#token-error")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('bullflow.token')") is None

    page.fill("#token-input", service.token)
    page.click("#token-submit")
    expect(dialog).to_be_hidden()
    expect(page.locator("#runs-table")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('bullflow.token')") == service.token

    # A token the server stops accepting (here: a stale one in the tab) brings the prompt back.
    page.evaluate("sessionStorage.setItem('bullflow.token', 'stale-token')")
    page.reload()
    expect(dialog).to_be_visible()
    expect(page.locator("#token-error")).to_be_visible()
