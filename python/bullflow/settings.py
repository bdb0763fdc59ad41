"""Settings as frozen dataclasses with documented defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import redis.asyncio as redis_asyncio

from .exceptions import SettingsError

__all__ = ["DurableSettings", "RedisSettings"]


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """Where Redis is and how to talk to it.

    ``socket_timeout`` defaults to None (no client-side read timeout): BullMQ blocks on commands
    for several seconds, and redis-py 8's 5-second default makes those calls time out and retry
    (see the bullmq notes). ``password`` is never shown in ``repr`` or ``url()``.

    TLS (``ssl``, a ``rediss://`` URL): the server's certificate is verified against
    ``ssl_ca_certs`` (a PEM file; default: the system's CAs) unless ``ssl_cert_reqs`` is
    ``"none"``; ``ssl_certfile``/``ssl_keyfile`` are a client certificate for servers that ask for
    one. In a URL they are query parameters: ``rediss://host:6380/0?ssl_ca_certs=/etc/ca.pem``.
    """

    host: str = "127.0.0.1"
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl: bool = False
    socket_timeout: float | None = None
    socket_connect_timeout: float = 5.0
    ssl_ca_certs: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_cert_reqs: str = "required"

    def __post_init__(self) -> None:
        if self.ssl_cert_reqs not in _CERT_REQS:
            raise SettingsError(
                f"ssl_cert_reqs must be one of {', '.join(_CERT_REQS)}, not {self.ssl_cert_reqs!r}"
            )

    @classmethod
    def from_url(cls, url: str) -> RedisSettings:
        """``redis://[user[:password]@]host[:port][/db]`` or ``rediss://`` (TLS; query parameters
        ``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``, ``ssl_cert_reqs``)."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as err:
            raise SettingsError(f"invalid Redis URL {_redacted(url)!r}: {err}") from None
        if parts.scheme not in ("redis", "rediss"):
            raise SettingsError(
                f"invalid Redis URL {_redacted(url)!r}: the scheme must be redis:// or rediss://"
            )
        path = parts.path.strip("/")
        if path and not path.isdigit():
            raise SettingsError(
                f"invalid Redis URL {_redacted(url)!r}: the database must be a number, got {path!r}"
            )
        options = dict(parse_qsl(parts.query, keep_blank_values=True))
        unknown = sorted(set(options) - set(_TLS_OPTIONS))
        if unknown:
            raise SettingsError(
                f"invalid Redis URL {_redacted(url)!r}: unknown parameter(s) {', '.join(unknown)} "
                f"(known: {', '.join(_TLS_OPTIONS)})"
            )
        if options and parts.scheme != "rediss":
            raise SettingsError(f"invalid Redis URL {_redacted(url)!r}: TLS parameters need rediss://")
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=port or 6379,
            db=int(path) if path else 0,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            ssl=parts.scheme == "rediss",
            ssl_ca_certs=options.get("ssl_ca_certs"),
            ssl_certfile=options.get("ssl_certfile"),
            ssl_keyfile=options.get("ssl_keyfile"),
            ssl_cert_reqs=options.get("ssl_cert_reqs", "required"),
        )

    def url(self) -> str:
        """The URL of these settings, with the password hidden."""
        auth = ""
        if self.username or self.password:
            auth = f"{self.username or ''}{':***' if self.password else ''}@"
        return f"{'rediss' if self.ssl else 'redis'}://{auth}{self.host}:{self.port}/{self.db}"

    def redis_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for a redis-py client (and for bullmq's ``connection`` dict)."""
        kwargs: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "db": self.db,
            "username": self.username,
            "password": self.password,
            "ssl": self.ssl,
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.socket_connect_timeout,
        }
        if self.ssl:
            kwargs.update(
                ssl_ca_certs=self.ssl_ca_certs,
                ssl_certfile=self.ssl_certfile,
                ssl_keyfile=self.ssl_keyfile,
                ssl_cert_reqs=self.ssl_cert_reqs,
            )
        return kwargs

    def client(self, max_connections: int = 64) -> redis_asyncio.Redis:
        """A new asyncio redis-py client (bytes replies, commands packed by hiredis) whose pool
        holds at most ``max_connections`` (callers beyond that wait for one); the caller closes
        it (``aclose()``)."""
        from .connection import FastPackConnection, FastPackSSLConnection

        kwargs = self.redis_kwargs()
        ssl = kwargs.pop("ssl")
        pool = redis_asyncio.BlockingConnectionPool(
            connection_class=FastPackSSLConnection if ssl else FastPackConnection,
            max_connections=max_connections,
            timeout=None,
            **kwargs,
        )
        return redis_asyncio.Redis.from_pool(pool)


_CERT_REQS = ("required", "optional", "none")
_TLS_OPTIONS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs")


def _redacted(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable>"
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url


@dataclass(frozen=True, slots=True)
class DurableSettings:
    """Settings of durable step workflows (``bullflow.durable``); clients and workers of the same
    instances must agree on ``prefix``, ``queue_name`` and ``queue_prefix``.

    * ``prefix`` -- the first part of every instance key (``<prefix>:wf:{<id>}``);
    * ``queue_name`` / ``queue_prefix`` -- the BullMQ queue of activation jobs; on a Redis Cluster
      give the queue a hash tag (``queue_prefix="{bullflow}"``);
    * ``lease_ms`` -- a runner's lease on an instance, renewed every third of it; a runner that
      dies is replaced after at most this long;
    * ``inline_threshold`` -- seconds: a sleep, retry backoff or wake-up this close is waited for
      in the worker; a longer one suspends the instance and frees the worker slot;
    * ``step_limit`` -- steps an instance may start over its life (``step.do``; sleeps and waits
      do not count), at most 10,000; a warning is logged at 80 %;
    * ``max_payload_bytes`` -- the largest params, step output, event payload or workflow output;
    * ``retention_seconds`` -- how long a finished instance's keys live (0 keeps them);
    * ``reconcile_grace_seconds`` -- how overdue an instance must be before the reconciler looks;
    * ``job_lock_ms`` / ``stalled_interval_ms`` / ``max_stalled_count`` -- the BullMQ worker's lock
      and stalled-job check (a job lost with its worker comes back after about ``job_lock_ms``).
    """

    prefix: str = "bullflow"
    queue_name: str = "bullflow-durable"
    queue_prefix: str = "bull"
    lease_ms: int = 30_000
    inline_threshold: float = 2.0
    step_limit: int = 1024
    max_payload_bytes: int = 1024 * 1024
    retention_seconds: int = 7 * 24 * 3600
    reconcile_grace_seconds: float = 60.0
    job_lock_ms: int = 30_000
    stalled_interval_ms: int = 30_000
    max_stalled_count: int = 10

    def __post_init__(self) -> None:
        if not self.prefix or not self.queue_name:
            raise SettingsError("DurableSettings: prefix and queue_name must not be empty")
        if not 1 <= self.step_limit <= 10_000:
            raise SettingsError(f"DurableSettings.step_limit must be 1..10000, got {self.step_limit}")
        if self.lease_ms < 100:
            raise SettingsError(f"DurableSettings.lease_ms must be at least 100, got {self.lease_ms}")
        if self.inline_threshold < 0 or self.retention_seconds < 0 or self.max_payload_bytes <= 0:
            raise SettingsError(
                "DurableSettings: inline_threshold and retention_seconds must be >= 0, max_payload_bytes > 0"
            )
