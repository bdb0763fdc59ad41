"""Bearer-token auth, the request body limit, settings validation, and secrets kept out of logs
and reprs; Redis with a password and an ACL user."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from redis.asyncio import SSLConnection
from tests.redis_servers import start_redis_server

from bullflow.adapter import BullMQAdapter
from bullflow.api import ApiSettings, create_app
from bullflow.api.auth import token_matches
from bullflow.api.limits import BodySizeLimitMiddleware
from bullflow.exceptions import SettingsError
from bullflow.settings import RedisSettings

from .conftest import TOKEN, unique
from .nodes import REGISTRY

pytestmark = pytest.mark.timeout(30)

PROTECTED = [
    ("GET", "/workflows"),
    ("POST", "/workflows"),
    ("GET", "/workflows/some-id"),
    ("POST", "/workflows/some-id/execute"),
    ("GET", "/workflows/runs"),
    ("GET", "/workflows/runs/r1/status"),
    ("GET", "/workflows/runs/r1/events"),
    ("POST", "/workflows/runs/r1/cancel"),
    ("GET", "/metrics"),
    ("GET", "/queues"),
    ("GET", "/workers"),
    ("GET", "/durable/instances"),
    ("POST", "/durable/Any/instances"),
    ("GET", "/no/such/route"),
]


async def test_every_route_but_health_needs_a_token(
    make_api: Callable[..., Awaitable[httpx.AsyncClient]],
) -> None:
    api = await make_api(auth=False)
    bad_headers: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
        {"Authorization": "Bearer "},
    ]
    for method, path in PROTECTED:
        for headers in bad_headers:
            # a malformed body must not get past auth to validation either
            reply = await api.request(method, path, headers=headers, content=b"{not json")
            assert reply.status_code == 401, (method, path, headers, reply.text)
            assert reply.json() == {"detail": "Not authenticated"}  # the same body whatever was wrong
            assert reply.headers["www-authenticate"] == "Bearer"
    for token in (TOKEN, "second-token-fedcba9876543210"):
        reply = await api.get("/workflows", headers={"Authorization": f"bearer {token}"})
        assert reply.status_code == 200
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    assert (await api.get("/readyz")).json() == {"status": "ready"}
    assert (await api.get("/ui")).headers["location"] == "/ui/"
    page = await api.get("/ui/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    script = await api.get("/ui/app.js")
    assert script.status_code == 200 and script.headers["x-content-type-options"] == "nosniff"
    schema = (await api.get("/openapi.json")).json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "/workflows/{blueprint_id}/execute-async" in schema["paths"]
    assert (await api.get("/docs")).status_code == 200


async def test_docs_can_be_switched_off(make_api: Callable[..., Awaitable[httpx.AsyncClient]]) -> None:
    api = await make_api(docs=False)
    assert (await api.get("/openapi.json")).status_code == 404
    assert (await api.get("/openapi.json", headers={"Authorization": ""})).status_code == 401


def test_token_matches_compares_against_every_token() -> None:
    tokens = [b"alpha-token", b"beta-token"]
    assert token_matches(b"beta-token", tokens) and token_matches(b"alpha-token", tokens)
    assert not token_matches(b"beta-toke", tokens) and not token_matches(b"", tokens)
    assert not token_matches(b"anything", [])


def test_settings_refuse_what_would_be_unsafe_or_wrong() -> None:
    with pytest.raises(SettingsError, match="BULLFLOW_API_TOKENS"):
        ApiSettings()
    assert ApiSettings(auth=False).tokens == ()
    for tokens in ((" padded",), ("",), ("two words",)):
        with pytest.raises(SettingsError):
            ApiSettings(tokens=tokens)
    with pytest.raises(SettingsError):
        ApiSettings(tokens=("t",), execute_timeout=301)
    with pytest.raises(SettingsError):
        ApiSettings(tokens=("t",), queues=())
    with pytest.raises(SettingsError, match="BULLFLOW_API_PORT"):
        ApiSettings.from_env({"BULLFLOW_API_TOKENS": "t", "BULLFLOW_API_PORT": "http"})


def test_settings_from_env() -> None:
    env = {
        "BULLFLOW_REDIS_URL": "rediss://alice:s3cret-pw@redis.internal:6380/2",
        "BULLFLOW_API_TOKENS": "tok-one, tok-two",
        "BULLFLOW_QUEUE": "q1,q2",
        "BULLFLOW_DURABLE_PREFIX": "dp",
        "BULLFLOW_API_MAX_BODY_BYTES": "2048",
        "BULLFLOW_API_PORT": "9000",
    }
    settings = ApiSettings.from_env(env, port=9100)
    assert settings.tokens == ("tok-one", "tok-two")
    assert settings.queues == ("q1", "q2") and settings.queue == "q1"
    assert settings.durable.prefix == "dp" and settings.max_body_bytes == 2048 and settings.port == 9100
    redis = settings.redis
    assert (redis.host, redis.port, redis.db, redis.username, redis.password, redis.ssl) == (
        "redis.internal",
        6380,
        2,
        "alice",
        "s3cret-pw",
        True,
    )
    # secrets stay out of reprs and the URL the process logs
    for text in (repr(settings), redis.url()):
        assert "s3cret-pw" not in text and "tok-one" not in text
    assert redis.url() == "rediss://alice:***@redis.internal:6380/2"
    assert ApiSettings.from_env({"BULLFLOW_API_AUTH": "0"}).auth is False


async def test_a_rediss_url_makes_tls_connections() -> None:
    settings = ApiSettings.from_env(
        {"BULLFLOW_REDIS_URL": "rediss://127.0.0.1:6390/0", "BULLFLOW_API_TOKENS": "t"}
    )
    client = settings.redis.client()
    try:
        connection_class = client.connection_pool.connection_class
        assert issubclass(connection_class, SSLConnection)
        assert client.connection_pool.connection_kwargs["username"] is None
    finally:
        await client.aclose()
    plain = RedisSettings.from_url("redis://127.0.0.1:6390/0").client()
    try:
        assert not issubclass(plain.connection_pool.connection_class, SSLConnection)
    finally:
        await plain.aclose()


async def test_the_body_limit(make_api: Callable[..., Awaitable[httpx.AsyncClient]]) -> None:
    api = await make_api(max_body_bytes=1000)
    big = {"id": unique("big"), "nodes": [], "edges": [], "metadata": {"pad": "x" * 2000}}
    reply = await api.post("/workflows", json=big)
    assert reply.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked
        for _ in range(20):
            yield b" " * 100

    streamed = await api.post("/workflows", content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413
    small = await api.post("/workflows", json={"id": unique("small"), "nodes": [], "edges": []})
    assert small.status_code == 201


async def test_the_body_limit_counts_what_arrives_not_what_is_declared() -> None:
    """A Content-Length that lies (smaller than the body) does not get a large body through."""
    reached: list[bytes] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        reached.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def run(declared: int, parts: list[bytes]) -> int:
        messages = [
            {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
            for i, part in enumerate(parts)
        ]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/",
            "headers": [(b"content-length", str(declared).encode())],
        }
        await BodySizeLimitMiddleware(app, max_bytes=100)(scope, receive, send)
        return int(sent[0]["status"])

    assert await run(10, [b"x" * 60, b"x" * 60]) == 413
    assert reached == []
    assert await run(101, [b"x" * 10]) == 413  # declared too large: refused before reading
    assert await run(100, [b"x" * 50, b"x" * 50]) == 200
    assert reached == [b"x" * 100]


async def test_validation_errors_carry_the_field_path(api: httpx.AsyncClient) -> None:
    reply = await api.post("/durable/instances/x/events", json={"type": "", "payload": 1})
    assert reply.status_code == 422
    assert reply.json()["detail"][0]["loc"] == ["body", "type"]
    reply = await api.get("/workflows/runs", params={"limit": 0})
    assert reply.status_code == 422 and reply.json()["detail"][0]["loc"] == ["query", "limit"]
    malformed = await api.post("/workflows", content=b'{"id": ', headers={"Content-Type": "application/json"})
    assert malformed.status_code == 422 and malformed.json()["detail"][0]["type"] == "json_invalid"


# --------------------------------------------------------------------- Redis with a password
PASSWORD = "redis-pass-5f2e9c"
ACL_PASSWORD = "acl-pass-8d1b3a"


@pytest.fixture(scope="module")
def secured_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A redis-server with ``requirepass`` and an ACL user ``bullflow-api``; yields its port."""
    server = start_redis_server(
        tmp_path_factory.mktemp("secured-redis"),
        *("--requirepass", PASSWORD),
        # the words of one config line, as separate arguments
        *("--user", "bullflow-api", "on", f">{ACL_PASSWORD}", "~*", "&*", "+@all"),
        ready_reply=b"-NOAUTH",
    )
    yield server.port
    server.stop()


@pytest.mark.parametrize("user", ["", "bullflow-api"])
async def test_redis_with_a_password_or_an_acl_user_and_no_secret_in_the_logs(
    secured_redis: int,
    api_settings: ApiSettings,
    key_prefix: str,
    caplog: pytest.LogCaptureFixture,
    user: str,
) -> None:
    password = ACL_PASSWORD if user else PASSWORD
    url = f"redis://{user}:{password}@127.0.0.1:{secured_redis}/0"
    caplog.set_level(logging.DEBUG)
    settings = ApiSettings(**{**_fields(api_settings), "redis": RedisSettings.from_url(url)})
    app = create_app(settings)
    worker = BullMQAdapter(registry=REGISTRY, connection=url, queue_name=key_prefix, heartbeat_interval=0.1)
    worker.start()
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://api.test",
                headers={"Authorization": f"Bearer {TOKEN}"},
            ) as api,
        ):
            assert (await api.get("/readyz")).status_code == 200
            bp_id = unique("secured")
            blueprint = {"id": bp_id, "nodes": [{"id": "a", "uses": "add"}], "edges": []}
            assert (await api.post("/workflows", json=blueprint)).status_code == 201
            result = await api.post(f"/workflows/{bp_id}/execute", json={"input": {"a": 1, "b": 2}})
            assert result.json()["output"]["_outputs.a"] == 3
            assert (await api.get("/workflows", headers={"Authorization": "Bearer nope"})).status_code == 401
    finally:
        await worker.close(timeout=5)

    wrong = ApiSettings(
        **{**_fields(api_settings), "redis": RedisSettings.from_url(url.replace(password, "wrong-pw"))}
    )
    app = create_app(wrong)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as api,
    ):
        reply = await api.get("/readyz")
        assert reply.status_code == 503 and reply.json() == {"status": "unavailable"}

    assert any("API ready" in r.getMessage() for r in caplog.records)
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    for secret in (password, TOKEN, "wrong-pw"):
        assert secret not in logged


def _fields(settings: ApiSettings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in settings.__dataclass_fields__}
