"""``bullflow serve`` as a real process on a loopback port."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from bullflow.adapter import BullMQAdapter

from .conftest import eventually, free_port, unique

pytestmark = pytest.mark.timeout(40)

ROOT = Path(__file__).resolve().parents[2]
SERVE_TOKEN = "serve-test-token-a1b2c3d4e5"


def bullflow(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bullflow", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


async def test_serve_runs_the_api_over_http(
    redis_server: str, key_prefix: str, make_worker: Callable[..., BullMQAdapter]
) -> None:
    port = free_port()
    password_free_url = redis_server
    proc = bullflow(
        "serve",
        "--port",
        str(port),
        "--redis-url",
        password_free_url,
        "--queue",
        key_prefix,
        "--token",
        SERVE_TOKEN,
        "--durable-module",
        "tests.api.durable_workflows",
        "--durable-prefix",
        key_prefix,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:

            async def up() -> bool:
                assert proc.poll() is None, proc.communicate()[1]
                try:
                    return (await http.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(up, timeout=20, interval=0.1)
            assert (await http.get("/workflows")).status_code == 401
            assert (await http.get("/docs")).status_code == 200
            auth = {"Authorization": f"Bearer {SERVE_TOKEN}"}
            assert "ApiApproval" in (await http.get("/durable/workflows", headers=auth)).text

            make_worker()
            bp_id = unique("served")
            blueprint = {"id": bp_id, "nodes": [{"id": "a", "uses": "add"}], "edges": []}
            assert (await http.post("/workflows", json=blueprint, headers=auth)).status_code == 201
            started = await http.post(
                f"/workflows/{bp_id}/execute-async", json={"input": {"a": 4, "b": 5}}, headers=auth
            )
            assert started.status_code == 202
            run_id = started.json()["runId"]

            async def completed() -> bool:
                view = (await http.get(f"/workflows/runs/{run_id}/status", headers=auth)).json()
                return bool(view["status"] == "completed")

            await eventually(completed)
            detail = (await http.get(f"/workflows/runs/{run_id}/tasks/a", headers=auth)).json()
            assert detail["output"] == 9
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.get_running_loop().run_in_executor(
            None, lambda: proc.communicate(timeout=15)
        )
        assert proc.returncode == 0, stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "API ready" in stderr and f"queues {key_prefix}" in stderr
    assert f"/workflows/runs/{run_id}/status" in stderr  # the access log
    assert SERVE_TOKEN not in stderr


def test_serve_refuses_bad_settings(redis_server: str) -> None:
    no_token = bullflow("serve", "--redis-url", redis_server, env={"BULLFLOW_API_TOKENS": ""})
    _, stderr = no_token.communicate(timeout=20)
    assert no_token.returncode == 2 and "bearer token" in stderr
    bad_module = bullflow("serve", "--token", "t0k", "--durable-module", "tests.api.no_such_module")
    _, stderr = bad_module.communicate(timeout=20)
    assert bad_module.returncode == 2 and "no_such_module" in stderr
    no_redis = bullflow("serve", "--token", "t0k", "--redis-url", f"redis://:pw-x9@127.0.0.1:{free_port()}/0")
    _, stderr = no_redis.communicate(timeout=20)
    assert no_redis.returncode == 2 and "cannot reach Redis" in stderr and "pw-x9" not in stderr
