"""The FastAPI application: :func:`create_app` wires the routes, the bearer-token and body-size
middlewares, the error handlers, the dashboard's static files and the lifespan that opens and
closes the Redis clients."""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.responses import RedirectResponse
from fastapi.security import HTTPBearer
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..durable.entrypoint import WorkflowEntrypoint, registered_workflows
from ..exceptions import SettingsError
from . import durable, ops, runs, workflows
from .auth import BearerAuthMiddleware
from .errors import install_error_handlers
from .limits import BodySizeLimitMiddleware
from .settings import ApiSettings
from .state import ApiState

__all__ = ["STATIC_DIR", "create_app", "load_durable_workflows"]

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
PUBLIC_PATHS = ("/healthz", "/readyz", "/ui", "/")
DOCS_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json")

# Declares the bearer scheme in the OpenAPI schema (the "Authorize" button of /docs); the
# middleware is what checks the token.
_bearer = HTTPBearer(auto_error=False, description="one of the API tokens (BULLFLOW_API_TOKENS)")


# The dashboard's pages load only their own scripts and styles (no inline code), so they are
# served under a strict policy.
_UI_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


class _SecurityHeaders:
    """Adds the dashboard's security headers to every response of the wrapped ASGI app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_UI_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def load_durable_workflows(modules: tuple[str, ...]) -> dict[str, type[WorkflowEntrypoint]]:
    """Import ``modules``; every :class:`WorkflowEntrypoint` subclass defined so far, by name."""
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as err:
            raise SettingsError(f"durable module {name!r}: {type(err).__name__}: {err}") from None
    return registered_workflows()


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    """The API app of ``settings`` (default: :meth:`ApiSettings.from_env`)."""
    settings = settings or ApiSettings.from_env()
    classes = load_durable_workflows(settings.durable_modules)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = ApiState.open(settings, classes)
        app.state.bullflow = state
        logger.info(
            "API ready: Redis %s, queues %s, durable workflows %s, auth %s",
            settings.redis.url(),
            ", ".join(settings.queues),
            ", ".join(sorted(classes)) or "none",
            f"{len(settings.tokens)} token(s)" if settings.auth else "DISABLED",
        )
        try:
            yield
        finally:
            await state.close()

    app = FastAPI(
        title="bullflow",
        version=__version__,
        description="Run workflows asynchronously on BullMQ workers: register blueprints, start "
        "runs, follow them, and control durable workflow instances. Every route but `/healthz`, "
        "`/readyz` and the dashboard (`/ui`) needs `Authorization: Bearer <token>`.",
        lifespan=lifespan,
        docs_url="/docs" if settings.docs else None,
        redoc_url="/redoc" if settings.docs else None,
        openapi_url="/openapi.json" if settings.docs else None,
    )
    install_error_handlers(app)
    protected = [Depends(_bearer)] if settings.auth else []
    app.include_router(ops.router)
    # The run routes come first: /workflows/runs is not the blueprint "runs" (a reserved id).
    for router in (runs.router, workflows.router, durable.router):
        app.include_router(router, dependencies=protected)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/ui/")

    @app.get("/ui", include_in_schema=False)
    async def ui() -> RedirectResponse:
        return RedirectResponse("/ui/")

    if STATIC_DIR.is_dir():
        app.mount("/ui", _SecurityHeaders(StaticFiles(directory=STATIC_DIR, html=True)), name="ui")
    else:  # pragma: no cover - the wheel ships the dashboard
        logger.warning("the dashboard's files are missing (%s); /ui is not served", STATIC_DIR)

    # Middlewares run outermost last-added first: auth, then the body limit, then the app.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.auth:
        app.add_middleware(
            BearerAuthMiddleware,
            tokens=settings.tokens,
            public=PUBLIC_PATHS + (DOCS_PATHS if settings.docs else ()),
            public_prefixes=("/ui/",),
        )
    return app
