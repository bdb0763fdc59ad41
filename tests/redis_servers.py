"""Throwaway ``redis-server`` processes for tests: on a free loopback port, no persistence, in a
folder of their own. The session server of ``tests/conftest.py`` and the special ones (password
and ACL user, TLS, cluster mode) all start here."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

__all__ = ["RedisServer", "free_port", "start_redis_server"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A started server: its process and port; ``stop()`` ends it."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int) -> None:
        self.proc = proc
        self.port = port

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


def _answers(port: int, reply: bytes | None) -> bool:
    """Whether the port takes connections and, unless ``reply`` is None (a TLS-only server),
    answers PING with a line starting with ``reply``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            if reply is None:
                return True
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(reply)
    except OSError:
        return False


def start_redis_server(
    workdir: Path, *options: str, ready_reply: bytes | None = b"+PONG", tls: bool = False, attempts: int = 3
) -> RedisServer:
    """Start ``redis-server`` with ``options`` on a free port (its TLS port when ``tls``) and wait
    until it answers (``ready_reply``: the start of its reply to PING, e.g. ``b"-NOAUTH"`` when a
    password is required; None for a TLS-only server). A port taken in the meantime is retried
    with another; the test fails when the server does not start. Its log is ``workdir/redis.log``."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: run `make test`, which installs it")
    log_path = workdir / "redis.log"
    for _ in range(attempts):
        port = free_port()
        ports = ("--port", "0", "--tls-port", str(port)) if tls else ("--port", str(port))
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                [
                    *(binary, *ports, "--bind", "127.0.0.1"),
                    *("--save", "", "--appendonly", "no", "--dir", str(workdir)),
                    *options,
                ],
                cwd=workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            if _answers(port, ready_reply):
                return RedisServer(proc, port)
            time.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=5)
    pytest.fail(f"redis-server did not start: {log_path.read_text()[-2000:]}")
