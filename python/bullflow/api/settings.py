"""Settings of the HTTP API (``bullflow serve``), a frozen dataclass with documented defaults and
:meth:`ApiSettings.from_env`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from .. import keys
from ..exceptions import SettingsError
from ..settings import DurableSettings, RedisSettings

__all__ = ["ApiSettings"]

MAX_EXECUTE_TIMEOUT = 300.0


def _split(text: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """What the API process needs.

    * ``redis`` -- the server (``redis://``/``rediss://`` with user and password, see
      :meth:`RedisSettings.from_url`);
    * ``tokens`` -- the bearer tokens accepted (any of them); required unless ``auth`` is False
      (local development only);
    * ``queues`` -- the flow queues: runs start on the first, ``/metrics`` and ``/queues`` report
      all of them (plus the durable queue); ``queue_prefix`` is their BullMQ key prefix;
    * ``durable`` -- the durable workflow settings (prefix, queue), which must match the durable
      workers'; ``durable_modules`` are imported at start so their workflow classes are known;
    * ``max_body_bytes`` -- the largest request body (413 above it);
    * ``execute_timeout`` / ``max_execute_timeout`` -- seconds ``POST /workflows/{id}/execute``
      waits by default / at most;
    * ``events_poll_interval`` / ``events_heartbeat`` -- seconds between checks of a run for
      changes and between keep-alive comments in ``/workflows/runs/{id}/events``;
    * ``docs`` -- serve the OpenAPI schema and ``/docs`` (they carry no data, so no token);
    * ``host`` / ``port`` -- where ``bullflow serve`` listens.
    """

    redis: RedisSettings = field(default_factory=RedisSettings)
    tokens: tuple[str, ...] = field(default=(), repr=False)
    auth: bool = True
    queues: tuple[str, ...] = (keys.DEFAULT_QUEUE,)
    queue_prefix: str = keys.DEFAULT_QUEUE_PREFIX
    durable: DurableSettings = field(default_factory=DurableSettings)
    durable_modules: tuple[str, ...] = ()
    max_body_bytes: int = 1024 * 1024
    execute_timeout: float = 30.0
    max_execute_timeout: float = MAX_EXECUTE_TIMEOUT
    events_poll_interval: float = 0.2
    events_heartbeat: float = 15.0
    docs: bool = True
    host: str = "127.0.0.1"
    port: int = 8000

    def __post_init__(self) -> None:
        if not self.queues or any(not q for q in self.queues):
            raise SettingsError("ApiSettings.queues: name at least one flow queue (no empty names)")
        if self.auth and not self.tokens:
            raise SettingsError(
                "the API needs at least one bearer token: set BULLFLOW_API_TOKENS or pass --token "
                "(or --no-auth / BULLFLOW_API_AUTH=0 for local development only)"
            )
        for token in self.tokens:
            if not token or token != token.strip() or any(c.isspace() for c in token):
                raise SettingsError("ApiSettings.tokens: a token must not be empty or contain whitespace")
        if self.max_body_bytes < 1:
            raise SettingsError(f"ApiSettings.max_body_bytes must be positive, got {self.max_body_bytes}")
        if not 0 < self.execute_timeout <= self.max_execute_timeout:
            raise SettingsError(
                "ApiSettings.execute_timeout must be positive and at most max_execute_timeout "
                f"({self.max_execute_timeout:g}), got {self.execute_timeout:g}"
            )
        if self.events_poll_interval <= 0 or self.events_heartbeat <= 0:
            raise SettingsError("ApiSettings: events_poll_interval and events_heartbeat must be positive")
        if not 0 <= self.port <= 65535:
            raise SettingsError(f"ApiSettings.port must be 0..65535, got {self.port}")

    @property
    def queue(self) -> str:
        """The queue runs are started on."""
        return self.queues[0]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> ApiSettings:
        """Settings from the environment, then ``overrides`` (keyword arguments of the class):

        ``BULLFLOW_REDIS_URL``, ``BULLFLOW_API_TOKENS`` (comma-separated), ``BULLFLOW_API_AUTH``
        (``0`` disables auth), ``BULLFLOW_QUEUE`` (comma-separated), ``BULLFLOW_QUEUE_PREFIX``,
        ``BULLFLOW_DURABLE_PREFIX``, ``BULLFLOW_DURABLE_QUEUE``, ``BULLFLOW_DURABLE_MODULES``
        (comma-separated), ``BULLFLOW_API_MAX_BODY_BYTES``, ``BULLFLOW_API_EXECUTE_TIMEOUT``,
        ``BULLFLOW_API_HOST``, ``BULLFLOW_API_PORT``.
        """
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        url = env.get("BULLFLOW_REDIS_URL")
        if url:
            values["redis"] = RedisSettings.from_url(url)
        if env.get("BULLFLOW_API_TOKENS"):
            values["tokens"] = _split(env["BULLFLOW_API_TOKENS"])
        if env.get("BULLFLOW_API_AUTH"):
            values["auth"] = env["BULLFLOW_API_AUTH"].strip().lower() not in ("0", "false", "no", "off")
        if env.get("BULLFLOW_QUEUE"):
            values["queues"] = _split(env["BULLFLOW_QUEUE"])
        if env.get("BULLFLOW_QUEUE_PREFIX"):
            values["queue_prefix"] = env["BULLFLOW_QUEUE_PREFIX"]
        if env.get("BULLFLOW_DURABLE_PREFIX") or env.get("BULLFLOW_DURABLE_QUEUE"):
            values["durable"] = DurableSettings(
                prefix=env.get("BULLFLOW_DURABLE_PREFIX") or keys.DEFAULT_DURABLE_PREFIX,
                queue_name=env.get("BULLFLOW_DURABLE_QUEUE") or keys.DEFAULT_DURABLE_QUEUE,
            )
        if env.get("BULLFLOW_DURABLE_MODULES"):
            values["durable_modules"] = _split(env["BULLFLOW_DURABLE_MODULES"])
        for name, attr, kind in (
            ("BULLFLOW_API_MAX_BODY_BYTES", "max_body_bytes", int),
            ("BULLFLOW_API_EXECUTE_TIMEOUT", "execute_timeout", float),
            ("BULLFLOW_API_PORT", "port", int),
        ):
            raw = env.get(name)
            if raw:
                try:
                    values[attr] = kind(raw)
                except ValueError:
                    raise SettingsError(f"{name}: expected a number, got {raw!r}") from None
        if env.get("BULLFLOW_API_HOST"):
            values["host"] = env["BULLFLOW_API_HOST"]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
