"""The live event stream of a run (server-sent events)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from bullflow.adapter import BullMQAdapter

from .conftest import TOKEN, eventually, unique

pytestmark = pytest.mark.timeout(30)


def parse_events(text: str) -> list[tuple[str, Any]]:
    """(event, data) of each frame; comments as ("comment", text)."""
    found: list[tuple[str, Any]] = []
    for frame in text.split("\n\n"):
        lines = [line for line in frame.split("\n") if line]
        if not lines:
            continue
        if all(line.startswith(":") for line in lines):
            found.append(("comment", lines[0][1:].strip()))
            continue
        fields = dict(line.split(": ", 1) for line in lines if not line.startswith(":"))
        if "event" in fields:
            found.append((fields["event"], json.loads(fields["data"])))
    return found


async def test_the_stream_follows_a_run_to_its_end(api: httpx.AsyncClient, worker: BullMQAdapter) -> None:
    bp_id = unique("events")
    blueprint = {
        "id": bp_id,
        "nodes": [
            {"id": "first", "uses": "slow", "params": {"seconds": 0.3}},
            {"id": "second", "uses": "slow", "params": {"seconds": 0.3}},
        ],
        "edges": [{"source": "first", "target": "second"}],
    }
    assert (await api.post("/workflows", json=blueprint)).status_code == 201
    run_id = (await api.post(f"/workflows/{bp_id}/execute-async", json={})).json()["runId"]
    async with api.stream("GET", f"/workflows/runs/{run_id}/events") as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        assert reply.headers["cache-control"] == "no-cache"
        text = (await reply.aread()).decode()
    events = [data for kind, data in parse_events(text) if kind == "status"]
    assert events[0]["runId"] == run_id
    assert events[-1]["status"] == "completed"
    assert all(e["status"] == "running" for e in events[:-1])
    # it saw the nodes change: one running while the other waited, then both completed
    seen = {tuple(t["status"] for t in e["tasks"]) for e in events}
    assert ("running", "pending") in seen or ("running", "queued") in seen or ("completed", "running") in seen
    assert tuple(t["status"] for t in events[-1]["tasks"]) == ("completed", "completed")
    assert len(events) == len({json.dumps(e, sort_keys=True) for e in events})  # only changes are sent

    # a finished run: one frame, then the end
    again = await api.get(f"/workflows/runs/{run_id}/events")
    assert [kind for kind, _ in parse_events(again.text)] == ["status"]
    assert (await api.get(f"/workflows/runs/{unique('ghost')}/events")).status_code == 404


async def test_a_node_taking_its_job_is_sent_as_running(
    api: httpx.AsyncClient, worker: BullMQAdapter
) -> None:
    """Taking a job changes no run field; the stream still shows the node running before it
    completes (the view is read again while nothing else changes)."""
    bp_id = unique("running")
    blueprint = {
        "id": bp_id,
        "nodes": [{"id": "only", "uses": "slow", "params": {"seconds": 2}}],
        "edges": [],
    }
    assert (await api.post("/workflows", json=blueprint)).status_code == 201
    run_id = (await api.post(f"/workflows/{bp_id}/execute-async", json={})).json()["runId"]
    async with api.stream("GET", f"/workflows/runs/{run_id}/events") as reply:
        text = (await reply.aread()).decode()
    events = [data for kind, data in parse_events(text) if kind == "status"]
    statuses = [e["tasks"][0]["status"] for e in events]
    assert "running" in statuses and statuses[-1] == "completed"
    running = events[statuses.index("running")]["tasks"][0]
    assert running["attempts"] == 1 and running["startedAt"] is not None and running["completedAt"] is None


async def test_keep_alive_comments_and_a_client_that_leaves(
    live_server: Callable[..., Awaitable[str]],
    api: httpx.AsyncClient,
    worker: BullMQAdapter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="bullflow.api.runs")
    base = await live_server(events_heartbeat=0.2)
    bp_id = unique("waits")
    blueprint = {"id": bp_id, "nodes": [{"id": "gate", "uses": "wait"}], "edges": []}
    assert (await api.post("/workflows", json=blueprint)).status_code == 201
    run_id = (await api.post(f"/workflows/{bp_id}/execute-async", json={})).json()["runId"]

    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        async with http.stream("GET", f"/workflows/runs/{run_id}/events") as reply:
            assert reply.status_code == 200
            seen: list[str] = []
            async for line in reply.aiter_lines():
                seen.append(line)
                if line.startswith(": keep-alive"):
                    break
        assert any(line == "event: status" for line in seen)
        # the client went away: the server stops polling for it
        await eventually(
            lambda: asyncio.sleep(0, any("client went away" in r.getMessage() for r in caplog.records)),
            timeout=5,
        )
        unauthorized = await http.get(f"/workflows/runs/{run_id}/events", headers={"Authorization": ""})
        assert unauthorized.status_code == 401
    status = (await api.get(f"/workflows/runs/{run_id}/status")).json()["status"]
    assert status == "awaiting"
