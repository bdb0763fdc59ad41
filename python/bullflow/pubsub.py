"""Listening to a pub/sub channel of ids (cancelled runs, terminated instances) for as long as a
worker runs, subscribing again after a lost connection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

__all__ = ["listen_for_ids"]

logger = logging.getLogger(__name__)


async def listen_for_ids(redis: Any, channel: str, on_id: Callable[[str], None]) -> None:
    """Call ``on_id`` with the text of every message sent on ``channel``, until cancelled."""
    while True:
        pubsub = redis.pubsub()
        try:
            await pubsub.subscribe(channel)
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                data = message["data"]
                on_id(data.decode() if isinstance(data, bytes) else str(data))
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            raise
        except Exception:
            logger.warning("listener of %s lost its connection; reconnecting", channel, exc_info=True)
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            await asyncio.sleep(1)
