"""Fixtures of the HTTP API tests: settings on this test's own queue and durable prefix, the app
served in-process (httpx over ASGI, lifespan included), in-process workers, and a uvicorn
server on a free loopback port for the streaming tests."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import uvicorn

from bullflow.adapter import BullMQAdapter
from bullflow.api import ApiSettings, create_app
from bullflow.settings import DurableSettings, RedisSettings

from .nodes import REGISTRY

TOKEN = "api-test-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unique(name: str) -> str:
    """A blueprint id no other test uses (the registry is shared by every test)."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def eventually(
    check: Callable[[], Awaitable[Any]], timeout: float = 10.0, interval: float = 0.05
) -> Any:
    """Poll ``check`` until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last: {value!r})")
        await asyncio.sleep(interval)


@pytest.fixture
def api_settings(redis_server: str, key_prefix: str) -> ApiSettings:
    return ApiSettings(
        redis=RedisSettings.from_url(redis_server),
        tokens=(TOKEN, "second-token-fedcba9876543210"),
        queues=(key_prefix,),
        durable=DurableSettings(
            prefix=key_prefix,
            queue_name=f"{key_prefix}-durable",
            lease_ms=2000,
            inline_threshold=0.2,
            job_lock_ms=2000,
            stalled_interval_ms=1000,
            retention_seconds=3600,
        ),
        execute_timeout=15,
        events_poll_interval=0.05,
    )


@pytest.fixture
async def make_api(api_settings: ApiSettings) -> AsyncIterator[Callable[..., Awaitable[httpx.AsyncClient]]]:
    """``await make_api(**overrides)``: an httpx client of a started app (lifespan run) with the
    token set; ``auth=False`` leaves the Authorization header off."""
    stack = contextlib.AsyncExitStack()

    async def make(*, auth: bool = True, **overrides: Any) -> httpx.AsyncClient:
        settings = ApiSettings(**{**_fields(api_settings), **overrides})
        app = create_app(settings)
        await stack.enter_async_context(app.router.lifespan_context(app))
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://api.test",
            headers={"Authorization": f"Bearer {TOKEN}"} if auth else {},
            timeout=30,
        )
        await stack.enter_async_context(client)
        return client

    async with stack:
        yield make


@pytest.fixture
async def api(make_api: Callable[..., Awaitable[httpx.AsyncClient]]) -> httpx.AsyncClient:
    return await make_api()


def _fields(settings: ApiSettings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in settings.__dataclass_fields__}


@pytest.fixture
async def make_worker(redis_server: str, key_prefix: str) -> AsyncIterator[Callable[..., BullMQAdapter]]:
    """``make_worker(**options)``: an in-process worker of this test's queue with the test nodes
    (``registry=`` replaces them); it heartbeats every 0.1 s."""
    made: list[BullMQAdapter] = []

    def make(**options: Any) -> BullMQAdapter:
        options.setdefault("registry", REGISTRY)
        options.setdefault("concurrency", 5)
        options.setdefault("heartbeat_interval", 0.1)
        adapter = BullMQAdapter(connection=redis_server, queue_name=key_prefix, **options)
        adapter.start()
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        await adapter.close(timeout=5)


@pytest.fixture
async def worker(
    make_worker: Callable[..., BullMQAdapter], api: httpx.AsyncClient, key_prefix: str
) -> BullMQAdapter:
    """A worker with the test nodes, listed by ``/workers`` before the test starts."""
    adapter = make_worker()

    async def listed() -> bool:
        reply = await api.get("/workers")
        return any(w["queue"] == key_prefix for w in reply.json()["workers"])

    await eventually(listed)
    return adapter


@pytest.fixture
async def live_server(api_settings: ApiSettings) -> AsyncIterator[Callable[..., Awaitable[str]]]:
    """``await live_server(**overrides)``: the app under uvicorn on a free loopback port; its
    base URL."""
    servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def start(**overrides: Any) -> str:
        port = free_port()
        app = create_app(ApiSettings(**{**_fields(api_settings), **overrides}))
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
        )
        task = asyncio.get_running_loop().create_task(server.serve())
        servers.append((server, task))
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        return f"http://127.0.0.1:{port}"

    yield start
    for server, task in servers:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
