"""Cooperative cancellation, like JavaScript's AbortSignal: the runtime stops scheduling nodes once
the signal is cancelled, and running nodes can observe it (``signal.cancelled``,
``await signal.wait()``, ``signal.raise_if_cancelled()``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from .exceptions import WorkflowCancelledError

__all__ = ["CancellationSignal"]


class CancellationSignal:
    __slots__ = ("_callbacks", "_cancelled", "_reason", "_waiters")

    def __init__(self) -> None:
        self._cancelled = False
        self._reason: Any = None
        self._callbacks: list[Callable[[Any], None]] = []
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    @property
    def reason(self) -> Any:
        return self._reason

    def cancel(self, reason: Any = None) -> None:
        """Cancel (idempotent: the first reason wins)."""
        if self._cancelled:
            return
        self._cancelled = True
        self._reason = reason
        for waiter in self._waiters:
            if not waiter.done():
                waiter.get_loop().call_soon_threadsafe(_resolve, waiter)
        self._waiters.clear()
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(reason)

    def add_callback(self, callback: Callable[[Any], None]) -> None:
        """Call ``callback(reason)`` on cancellation (at once if already cancelled)."""
        if self._cancelled:
            callback(self._reason)
        else:
            self._callbacks.append(callback)

    def remove_callback(self, callback: Callable[[Any], None]) -> None:
        try:
            self._callbacks.remove(callback)
        except ValueError:
            pass

    def raise_if_cancelled(self) -> None:
        if self._cancelled:
            raise WorkflowCancelledError(reason=self._reason)

    async def wait(self) -> None:
        """Return once the signal is cancelled."""
        if self._cancelled:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
