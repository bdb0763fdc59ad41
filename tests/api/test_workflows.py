"""Registering blueprints and running them through the API, with real workers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from bullflow.adapter import BullMQAdapter

from .conftest import eventually, unique

pytestmark = pytest.mark.timeout(30)


def chain(bp_id: str, *, second: str = "echo", value: Any = "done") -> dict[str, Any]:
    return {
        "id": bp_id,
        "nodes": [
            {"id": "sum", "uses": "add"},
            {"id": "last", "uses": second, "params": {"value": value}},
        ],
        "edges": [{"source": "sum", "target": "last"}],
    }


async def register(api: httpx.AsyncClient, blueprint: dict[str, Any]) -> dict[str, Any]:
    reply = await api.post("/workflows", json=blueprint)
    assert reply.status_code in (200, 201), reply.text
    return dict(reply.json())


async def test_register_versions_and_read_back(api: httpx.AsyncClient) -> None:
    bp_id = unique("versions")
    first = await api.post("/workflows", json=chain(bp_id))
    assert first.status_code == 201
    body = first.json()
    assert body["id"] == bp_id and body["version"] == 1 and body["created"] is True
    assert len(body["contentHash"]) == 64

    again = await api.post("/workflows", json=chain(bp_id))
    assert again.status_code == 200
    assert again.json()["version"] == 1 and again.json()["created"] is False

    changed = await register(api, chain(bp_id, value="v2"))
    assert changed["version"] == 2 and changed["contentHash"] != body["contentHash"]

    latest = (await api.get(f"/workflows/{bp_id}")).json()
    assert latest["version"] == 2 and latest["versions"] == [1, 2]
    assert latest["blueprint"]["nodes"][1]["params"] == {"value": "v2"}
    pinned = (await api.get(f"/workflows/{bp_id}", params={"version": 1})).json()
    assert pinned["contentHash"] == body["contentHash"]
    assert pinned["blueprint"]["nodes"][1]["params"] == {"value": "done"}
    assert pinned["registeredAt"].endswith("Z")

    listed = {w["id"]: w for w in (await api.get("/workflows")).json()["workflows"]}
    assert listed[bp_id]["version"] == 2

    assert (await api.get(f"/workflows/{bp_id}", params={"version": 3})).status_code == 404
    assert (await api.get(f"/workflows/{unique('nothing')}")).status_code == 404


async def test_invalid_blueprints_are_422_with_the_path(api: httpx.AsyncClient) -> None:
    bp_id = unique("bad")
    cases = [
        (
            {"id": bp_id, "nodes": [{"id": "a", "uses": "echo", "config": {"maxRetries": "3"}}], "edges": []},
            ["body", "nodes", 0, "config", "maxRetries"],
            {"nodeId": "a"},
        ),
        (
            {"id": bp_id, "nodes": [{"id": "a", "uses": "echo"}], "edges": [{"source": "a", "target": "zz"}]},
            ["body", "edges", 0, "target"],
            {"edge": "a -> zz"},
        ),
        (
            {
                "id": bp_id,
                "nodes": [{"id": "a", "uses": "echo"}, {"id": "b", "uses": "echo"}],
                "edges": [{"source": "a", "target": "b", "condition": "(("}],
            },
            ["body", "edges", 0, "condition"],
            {"edge": "a -> b"},
        ),
        ({"nodes": [], "edges": []}, ["body", "id"], {}),
        ({"id": "runs", "nodes": [], "edges": []}, ["body", "id"], {}),
        ({"id": "a/b", "nodes": [], "edges": []}, ["body", "id"], {}),
    ]
    for blueprint, loc, extra in cases:
        reply = await api.post("/workflows", json=blueprint)
        assert reply.status_code == 422, (blueprint, reply.text)
        (error,) = reply.json()["detail"]
        assert error["loc"] == loc, error
        assert error["msg"]
        for key, value in extra.items():
            assert error[key] == value
    assert (await api.get(f"/workflows/{bp_id}")).status_code == 404
    not_an_object = await api.post("/workflows", json=[1, 2])
    assert not_an_object.status_code == 422
    assert not_an_object.json()["detail"][0]["loc"] == ["body"]


async def test_every_api_process_sees_every_registration(
    make_api: Callable[..., Awaitable[httpx.AsyncClient]],
) -> None:
    one, two = await make_api(), await make_api()
    bp_id = unique("shared")
    assert (await register(one, chain(bp_id)))["version"] == 1
    seen = (await two.get(f"/workflows/{bp_id}")).json()
    assert seen["version"] == 1
    # the same new content from both at once: one version
    replies = await asyncio.gather(
        one.post("/workflows", json=chain(bp_id, value="x")),
        two.post("/workflows", json=chain(bp_id, value="x")),
    )
    assert sorted(r.status_code for r in replies) == [200, 201]
    assert {r.json()["version"] for r in replies} == {2}


async def test_unimplemented_lists_uses_no_live_worker_has(
    api: httpx.AsyncClient, worker: BullMQAdapter
) -> None:
    reply = await register(api, chain(unique("unimpl"), second="not-here"))
    assert reply["unimplemented"] == ["not-here"]  # add is served; built-ins never count
    wait = {
        "id": unique("builtin"),
        "nodes": [{"id": "w", "uses": "wait"}, {"id": "e", "uses": "echo"}],
        "edges": [{"source": "w", "target": "e"}],
    }
    assert (await register(api, wait))["unimplemented"] == []


async def test_execute_waits_for_the_result(api: httpx.AsyncClient, worker: BullMQAdapter) -> None:
    bp_id = unique("sync")
    await register(api, chain(bp_id))
    reply = await api.post(f"/workflows/{bp_id}/execute", json={"input": {"a": 2, "b": 40}})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["status"] == "completed" and body["blueprintId"] == bp_id
    assert body["output"]["_outputs.sum"] == 42 and body["output"]["_outputs.last"] == "done"
    assert body["blueprintVersion"] in (1, "1")
    tasks = {t["nodeId"]: t for t in body["tasks"]}
    assert tasks["sum"]["status"] == "completed" and tasks["sum"]["uses"] == "add"
    assert tasks["sum"]["attempts"] >= 1 and tasks["sum"]["startedAt"] and tasks["sum"]["completedAt"]
    assert body["startedAt"] and body["finishedAt"] and body["errors"] == []


async def test_execute_async_then_status(api: httpx.AsyncClient, worker: BullMQAdapter) -> None:
    bp_id = unique("async")
    await register(api, chain(bp_id))
    reply = await api.post(f"/workflows/{bp_id}/execute-async", json={"input": {"a": 1, "b": 1}})
    assert reply.status_code == 202
    run_id = reply.json()["runId"]

    async def done() -> dict[str, Any] | None:
        view = (await api.get(f"/workflows/runs/{run_id}/status")).json()
        return view if view["status"] == "completed" else None

    view = await eventually(done)
    assert [t["status"] for t in view["tasks"]] == ["completed", "completed"]
    assert any(entry["type"] == "run-completed" for entry in view["logs"])

    detail = (await api.get(f"/workflows/runs/{run_id}/tasks/sum")).json()
    assert detail["output"] == 2 and detail["status"] == "completed"
    assert (await api.get(f"/workflows/runs/{run_id}/tasks/nope")).status_code == 404
    blueprint = (await api.get(f"/workflows/runs/{run_id}/blueprint")).json()
    assert blueprint["id"] == bp_id and [n["id"] for n in blueprint["nodes"]] == ["sum", "last"]

    runs = (await api.get("/workflows/runs", params={"blueprintId": bp_id})).json()
    assert [r["runId"] for r in runs["runs"]] == [run_id]
    assert runs["runs"][0]["status"] == "completed" and runs["runs"][0]["durationMs"] >= 0


async def test_a_run_is_pinned_to_its_version(api: httpx.AsyncClient, worker: BullMQAdapter) -> None:
    bp_id = unique("pinned")
    await register(api, chain(bp_id, value="one"))
    await register(api, chain(bp_id, value="two"))
    old = (await api.post(f"/workflows/{bp_id}/execute", json={"version": 1})).json()
    new = (await api.post(f"/workflows/{bp_id}/execute", json={})).json()
    assert old["output"]["_outputs.last"] == "one" and old["blueprintVersion"] in (1, "1")
    assert new["output"]["_outputs.last"] == "two" and new["blueprintVersion"] in (2, "2")


async def test_execute_times_out_with_504_and_the_run_goes_on(
    api: httpx.AsyncClient, worker: BullMQAdapter
) -> None:
    bp_id = unique("slow")
    await register(
        api, {"id": bp_id, "nodes": [{"id": "s", "uses": "slow", "params": {"seconds": 1}}], "edges": []}
    )
    reply = await api.post(f"/workflows/{bp_id}/execute", json={"timeout": 0.2})
    assert reply.status_code == 504
    run_id = reply.json()["runId"]

    async def completed() -> bool:
        return bool((await api.get(f"/workflows/runs/{run_id}/status")).json()["status"] == "completed")

    await eventually(completed)


async def test_bad_run_requests(api: httpx.AsyncClient, worker: BullMQAdapter) -> None:
    bp_id = unique("badrun")
    await register(api, chain(bp_id))
    too_long = await api.post(f"/workflows/{bp_id}/execute", json={"timeout": 301})
    assert too_long.status_code == 422 and too_long.json()["detail"][0]["loc"] == ["body", "timeout"]
    reserved = await api.post(f"/workflows/{bp_id}/execute-async", json={"input": {"blueprintId": "x"}})
    assert reserved.status_code == 422
    assert reserved.json()["detail"][0]["loc"] == ["body", "input", "blueprintId"]
    typed = await api.post(f"/workflows/{bp_id}/execute-async", json={"input": [], "version": 0})
    assert typed.status_code == 422
    assert {tuple(e["loc"]) for e in typed.json()["detail"]} == {("body", "input"), ("body", "version")}
    extra = await api.post(f"/workflows/{bp_id}/execute-async", json={"inputs": {}})
    assert extra.status_code == 422 and extra.json()["detail"][0]["loc"] == ["body", "inputs"]
    assert (await api.post(f"/workflows/{unique('missing')}/execute-async", json={})).status_code == 404
    assert (await api.post(f"/workflows/{bp_id}/execute-async", json={"version": 9})).status_code == 404

    run_id = unique("run")
    first = await api.post(f"/workflows/{bp_id}/execute-async", json={"runId": run_id})
    assert first.status_code == 202 and first.json() == {"runId": run_id}
    second = await api.post(f"/workflows/{bp_id}/execute-async", json={"runId": run_id})
    assert second.status_code == 409 and second.json()["runId"] == run_id

    for path in ("status", "blueprint", "tasks/a"):
        assert (await api.get(f"/workflows/runs/{unique('ghost')}/{path}")).status_code == 404
    assert (await api.post(f"/workflows/runs/{unique('ghost')}/cancel")).status_code == 404
    assert (await api.post(f"/workflows/runs/{unique('ghost')}/resume", json={})).status_code == 404
    assert (await api.get("/workflows/runs", params={"status": "sleeping"})).status_code == 422


async def test_cancel_a_running_run(api: httpx.AsyncClient, worker: BullMQAdapter) -> None:
    bp_id = unique("cancel")
    await register(
        api, {"id": bp_id, "nodes": [{"id": "s", "uses": "slow", "params": {"seconds": 10}}], "edges": []}
    )
    run_id = (await api.post(f"/workflows/{bp_id}/execute-async", json={})).json()["runId"]

    async def running() -> bool:
        view = (await api.get(f"/workflows/runs/{run_id}/status")).json()
        return bool(view["tasks"][0]["status"] == "running")

    await eventually(running)
    reply = await api.post(f"/workflows/runs/{run_id}/cancel", json={"reason": "by test"})
    assert reply.json() == {"runId": run_id, "cancelled": True, "status": "cancelled"}
    again = await api.post(f"/workflows/runs/{run_id}/cancel")
    assert again.json() == {"runId": run_id, "cancelled": False, "status": "cancelled"}
    view = (await api.get(f"/workflows/runs/{run_id}/status")).json()
    assert view["status"] == "cancelled" and view["finishedAt"]


async def test_resume_a_waiting_run(api: httpx.AsyncClient, worker: BullMQAdapter) -> None:
    bp_id = unique("resume")
    await register(
        api,
        {
            "id": bp_id,
            "nodes": [{"id": "approve", "uses": "wait"}, {"id": "after", "uses": "echo"}],
            "edges": [{"source": "approve", "target": "after"}],
        },
    )
    waiting = await api.post(f"/workflows/{bp_id}/execute", json={})
    assert waiting.status_code == 200 and waiting.json()["status"] == "awaiting"
    run_id = waiting.json()["runId"]
    reply = await api.post(
        f"/workflows/runs/{run_id}/resume", json={"nodeId": "approve", "payload": {"ok": True}}
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["nodeId"] == "approve"

    async def completed() -> dict[str, Any] | None:
        view = (await api.get(f"/workflows/runs/{run_id}/status")).json()
        return view if view["status"] == "completed" else None

    await eventually(completed)
    detail = (await api.get(f"/workflows/runs/{run_id}/tasks/after")).json()
    assert detail["input"] == {"ok": True}
    conflict = await api.post(f"/workflows/runs/{run_id}/resume", json={})
    assert conflict.status_code == 409


async def test_a_node_no_worker_implements_fails_the_run_clearly(
    api: httpx.AsyncClient, worker: BullMQAdapter
) -> None:
    bp_id = unique("noimpl")
    reply = await register(api, chain(bp_id, second="not-implemented"))
    assert reply["unimplemented"] == ["not-implemented"]
    result = (await api.post(f"/workflows/{bp_id}/execute", json={"input": {"a": 1}})).json()
    assert result["status"] == "failed"
    # the worker refuses the whole run at its first job, naming the node and its uses key
    reason = result["reason"]
    assert "'not-implemented'" in reason and "node 'last'" in reason and bp_id in reason
    assert result["errors"] and result["errors"][0]["message"] == reason
    assert any(entry["type"] == "run-failed" and entry["message"] == reason for entry in result["logs"])
    assert result["finishedAt"]


async def test_runs_list_filters_and_pages(api: httpx.AsyncClient, worker: BullMQAdapter) -> None:
    bp_id = unique("paging")
    await register(api, chain(bp_id))
    run_ids = [unique("page") for _ in range(5)]
    for run_id in run_ids:
        reply = await api.post(f"/workflows/{bp_id}/execute", json={"runId": run_id})
        assert reply.json()["status"] == "completed"
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"blueprintId": bp_id, "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/workflows/runs", params=params)).json()
        assert len(page["runs"]) <= 2
        seen += [r["runId"] for r in page["runs"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == list(reversed(run_ids))  # newest first, each once
    found = (await api.get("/workflows/runs", params={"q": run_ids[2].upper(), "status": "completed"})).json()
    assert [r["runId"] for r in found["runs"]] == [run_ids[2]]
    none = (await api.get("/workflows/runs", params={"blueprintId": bp_id, "status": "failed"})).json()
    assert none == {"runs": [], "nextCursor": None}
    bad = await api.get("/workflows/runs", params={"cursor": "garbage"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "cursor"]
