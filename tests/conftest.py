"""Shared fixtures. A session-scoped ``redis-server`` on a free loopback port (no persistence);
each test gets its own key prefix so tests never see each other's data."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from bullflow.settings import RedisSettings


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start redis-server on 127.0.0.1:<free port>; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: run `make test`, which installs it")
    port = _free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    break
        except OSError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail("redis-server did not start")
        time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def key_prefix() -> str:
    """A unique prefix (also usable as a queue name) for one test's Redis keys."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def redis_settings(redis_server: str) -> RedisSettings:
    return RedisSettings.from_url(redis_server)


@pytest.fixture
async def redis_client(redis_settings: RedisSettings) -> AsyncIterator[Redis]:
    """An asyncio redis-py client of the test server, closed after the test."""
    client = redis_settings.client()
    try:
        yield client
    finally:
        await client.aclose()
