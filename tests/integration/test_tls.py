"""A ``rediss://`` URL against a real redis-server speaking TLS (certificates made with openssl
for this test): the server is verified against the CA given in the URL, a run completes with the
worker, the client and bullmq all on TLS, and a server the CA did not sign is refused."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from tests.redis_servers import start_redis_server

from bullflow import BullMQAdapter, Client
from bullflow.exceptions import SettingsError
from bullflow.settings import RedisSettings

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _certificates(folder: Path, name: str) -> None:
    """``<name>-ca.crt`` and a server certificate for 127.0.0.1 it signed."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}-ca.key", "-out",
             f"{name}-ca.crt", "-days", "2", "-subj", f"/CN={name} test CA", cwd=folder)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", "/CN=127.0.0.1", cwd=folder)  # fmt: skip
    (folder / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{name}-ca.crt", "-CAkey", f"{name}-ca.key",
             "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", "ext.cnf", cwd=folder)  # fmt: skip


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """A redis-server with only a TLS port; yields (port, folder with the certificates)."""
    folder = tmp_path_factory.mktemp("tls")
    _certificates(folder, "good")
    _certificates(folder, "other")
    server = start_redis_server(
        folder,
        *("--tls-cert-file", "good.crt", "--tls-key-file", "good.key"),
        *("--tls-ca-cert-file", "good-ca.crt", "--tls-auth-clients", "no"),
        tls=True,
        ready_reply=None,
    )
    try:
        yield server.port, folder
    finally:
        server.stop()


def test_tls_parameters_come_from_the_url() -> None:
    s = RedisSettings.from_url("rediss://u:pw@h:6380/2?ssl_ca_certs=/ca.pem&ssl_cert_reqs=optional")
    assert (s.ssl, s.ssl_ca_certs, s.ssl_cert_reqs, s.username, s.db) == (True, "/ca.pem", "optional", "u", 2)
    assert s.redis_kwargs()["ssl_ca_certs"] == "/ca.pem"
    assert "ssl_ca_certs" not in RedisSettings.from_url("redis://h").redis_kwargs()
    with pytest.raises(SettingsError, match="need rediss://"):
        RedisSettings.from_url("redis://h?ssl_ca_certs=/ca.pem")
    with pytest.raises(SettingsError, match="unknown parameter"):
        RedisSettings.from_url("rediss://h?sslmode=strict")
    with pytest.raises(SettingsError, match="ssl_cert_reqs"):
        RedisSettings.from_url("rediss://h?ssl_cert_reqs=sometimes")


async def test_a_run_completes_over_tls(tls_server: tuple[int, Path], key_prefix: str) -> None:
    port, folder = tls_server
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={folder / 'good-ca.crt'}"
    blueprint = {
        "id": "tls",
        "nodes": [{"id": "A", "uses": "hello"}, {"id": "B", "uses": "hello"}],
        "edges": [{"source": "A", "target": "B"}],
    }

    def hello(ctx: Any) -> str:
        return f"{ctx.node_id} over TLS"

    adapter = BullMQAdapter(
        registry={"hello": hello}, blueprints=[blueprint], connection=url, queue_name=key_prefix
    )
    client = Client(blueprints=[blueprint], connection=url, queue_name=key_prefix)
    adapter.start()
    try:
        result = await (await client.start("tls")).result(20)
    finally:
        await client.close()
        await adapter.close(timeout=10)
    assert result.status == "completed"
    assert result.context["_outputs.B"] == "B over TLS"


async def test_a_server_the_ca_did_not_sign_is_refused(tls_server: tuple[int, Path]) -> None:
    port, folder = tls_server
    settings = RedisSettings.from_url(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={folder / 'other-ca.crt'}")
    redis = settings.client()
    try:
        with pytest.raises(RedisConnectionError, match=r"(?i)certificate"):
            await redis.ping()
    finally:
        await redis.aclose()
    plain = RedisSettings.from_url(f"redis://127.0.0.1:{port}/0").client()
    try:
        with pytest.raises(RedisConnectionError):
            await plain.ping()  # a TLS-only server does not speak plain RESP
    finally:
        await plain.aclose()
