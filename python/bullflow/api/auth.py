"""Bearer-token authentication as a pure ASGI middleware: it runs before routing and body
parsing, so no route can forget it and an unauthenticated request learns nothing (every refusal
is the same 401, whatever was wrong with the credentials)."""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["BearerAuthMiddleware", "token_matches"]

_UNAUTHORIZED = json.dumps({"detail": "Not authenticated"}).encode()


def token_matches(presented: bytes, tokens: Iterable[bytes]) -> bool:
    """Whether ``presented`` is one of ``tokens``, compared in constant time against every token
    (the answer does not depend on which token matched or how much of one did)."""
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(presented, token)
    return matched


class BearerAuthMiddleware:
    """Requires ``Authorization: Bearer <token>`` on every HTTP request except the paths in
    ``public`` (exact) and under ``public_prefixes``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        tokens: Iterable[str],
        public: Iterable[str] = (),
        public_prefixes: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.tokens = tuple(t.encode() for t in tokens)
        self.public = frozenset(public)
        self.public_prefixes = tuple(public_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._is_public(scope.get("path", "")) or self._authorized(scope):
            await self.app(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(_UNAUTHORIZED)).encode()),
                    (b"www-authenticate", b"Bearer"),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": _UNAUTHORIZED})

    def _is_public(self, path: str) -> bool:
        return path in self.public or path.startswith(self.public_prefixes)

    def _authorized(self, scope: Scope) -> bool:
        header = next((v for k, v in scope.get("headers", ()) if k == b"authorization"), None)
        if header is None:
            return False
        scheme, _, credentials = bytes(header).strip().partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        return token_matches(credentials.strip(), self.tokens)
