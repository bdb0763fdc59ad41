"""/metrics (Prometheus text), /queues and /workers."""

from __future__ import annotations

import math
import re

import httpx
import pytest

from bullflow.adapter import BullMQAdapter
from bullflow.api.metrics import QueueDepth, render_metrics
from bullflow.tracking import Histogram, MetricsSnapshot

from .conftest import eventually, unique

pytestmark = pytest.mark.timeout(30)

SAMPLE = re.compile(r"^([a-z_]+)(?:\{([^}]*)\})? (\S+)$")


def parse(text: str) -> tuple[dict[tuple[str, tuple[tuple[str, str], ...]], float], dict[str, str]]:
    """Samples by (name, labels) and the TYPE of each family; fails on a malformed line."""
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    types: dict[str, str] = {}
    helped: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helped.add(line.split()[2])
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert name in helped, f"TYPE before HELP for {name}"
            types[name] = kind
        else:
            match = SAMPLE.match(line)
            assert match, f"malformed sample line {line!r}"
            labels = tuple(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
            samples[(match.group(1), labels)] = float(match.group(3))
    return samples, types


async def metrics(api: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    reply = await api.get("/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples, types = parse(reply.text)
    assert types["bullflow_nodes_completed_total"] == "counter"
    assert types["bullflow_node_duration_seconds"] == "histogram"
    assert types["bullflow_run_duration_seconds"] == "histogram"
    assert types["bullflow_queue_jobs"] == "gauge" and types["bullflow_workers_active"] == "gauge"
    return samples


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(labels.items())), 0.0)


async def test_metrics_count_what_runs_do(
    api: httpx.AsyncClient, worker: BullMQAdapter, key_prefix: str
) -> None:
    before = await metrics(api)
    assert value(before, "bullflow_workers_active", kind="flow") >= 1
    ok_id, bad_id = unique("metrics-ok"), unique("metrics-bad")
    ok = {
        "id": ok_id,
        "nodes": [{"id": "a", "uses": "add"}, {"id": "b", "uses": "echo"}],
        "edges": [{"source": "a", "target": "b"}],
    }
    bad = {"id": bad_id, "nodes": [{"id": "x", "uses": "boom"}], "edges": []}
    for blueprint in (ok, bad):
        assert (await api.post("/workflows", json=blueprint)).status_code == 201
    assert (await api.post(f"/workflows/{ok_id}/execute", json={})).json()["status"] == "completed"
    assert (await api.post(f"/workflows/{bad_id}/execute", json={})).json()["status"] == "failed"
    after = await metrics(api)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("bullflow_nodes_completed_total") >= 2
    assert delta("bullflow_nodes_failed_total") >= 1
    assert delta("bullflow_runs_finished_total", status="completed") >= 1
    assert delta("bullflow_runs_finished_total", status="failed") >= 1
    assert ("bullflow_runs_finished_total", (("status", "cancelled"),)) in after
    assert delta("bullflow_node_duration_seconds_count") >= 3
    assert delta("bullflow_run_duration_seconds_count") >= 2
    for family in ("bullflow_node_duration_seconds", "bullflow_run_duration_seconds"):
        buckets = sorted(
            (float(labels[0][1]), count)
            for (name, labels), count in after.items()
            if name == f"{family}_bucket"
        )
        counts = [count for _, count in buckets]
        assert counts == sorted(counts), "buckets are cumulative"
        assert math.isinf(buckets[-1][0]) and buckets[-1][1] == value(after, f"{family}_count")
        assert value(after, f"{family}_sum") >= 0
    for state in ("waiting", "active", "delayed", "prioritized", "completed", "failed"):
        assert ("bullflow_queue_jobs", (("queue", key_prefix), ("state", state))) in after
        assert ("bullflow_queue_jobs", (("queue", f"{key_prefix}-durable"), ("state", state))) in after


async def test_queues_and_workers(api: httpx.AsyncClient, worker: BullMQAdapter, key_prefix: str) -> None:
    bp_id = unique("queues")
    blueprint = {"id": bp_id, "nodes": [{"id": "s", "uses": "slow", "params": {"seconds": 5}}], "edges": []}
    assert (await api.post("/workflows", json=blueprint)).status_code == 201
    run_id = (await api.post(f"/workflows/{bp_id}/execute-async", json={})).json()["runId"]

    async def active() -> dict[str, int] | None:
        body = (await api.get("/queues")).json()
        mine = {q["name"]: q for q in body["queues"]}[key_prefix]
        return mine if mine["active"] == 1 else None

    mine = await eventually(active)
    assert set(mine) == {"name", "waiting", "active", "delayed", "prioritized", "completed", "failed"}
    body = (await api.get("/queues")).json()
    assert [q["name"] for q in body["queues"]] == [key_prefix, f"{key_prefix}-durable"]
    assert len(body["throughput"]) == 60
    assert all(p["minute"].endswith("Z") and p["nodes"] >= 0 for p in body["throughput"])
    assert (await api.post(f"/workflows/runs/{run_id}/cancel")).json()["cancelled"] is True

    workers = (await api.get("/workers")).json()["workers"]
    (mine_worker,) = [w for w in workers if w["queue"] == key_prefix]
    assert mine_worker["kind"] == "flow" and mine_worker["concurrency"] == 5
    assert {"add", "echo", "slow", "boom"} <= set(mine_worker["uses"])


def test_render_metrics_escapes_labels_and_closes_histograms() -> None:
    histogram = Histogram(buckets=[(0.5, 1), (float("inf"), 3)], sum_seconds=2.25, count=3)
    snapshot = MetricsSnapshot(
        nodes_completed=5,
        nodes_failed=1,
        runs_finished={"completed": 2},
        node_latency=histogram,
        run_latency=Histogram(buckets=[(0.5, 0)], sum_seconds=0, count=0),
        per_minute=[],
    )
    text = render_metrics(snapshot, [QueueDepth('we"ird\\q\nname', {"waiting": 4})], {"flow": 2})
    samples, _ = parse(text)
    assert value(samples, "bullflow_node_duration_seconds_bucket", le="0.5") == 1
    assert value(samples, "bullflow_node_duration_seconds_bucket", le="+Inf") == 3
    assert value(samples, "bullflow_node_duration_seconds_sum") == 2.25
    assert value(samples, "bullflow_run_duration_seconds_bucket", le="+Inf") == 0  # added when missing
    assert 'queue="we\\"ird\\\\q\\nname"' in text
    assert value(samples, "bullflow_runs_finished_total", status="failed") == 0
    assert value(samples, "bullflow_workers_active", kind="durable") == 0
    assert text.endswith("\n")
