"""redis-py asyncio connections that pack commands with hiredis's C packer.

redis-py's asyncio connection packs every command in Python (about 15 us for a 25-argument
EVALSHA, most of a worker's client-side cost per script call); ``hiredis.pack_command`` does the
same in about 2 us. Arguments hiredis does not take (e.g. ``bool``) fall back to redis-py's packer,
so errors are redis-py's own.
"""

from __future__ import annotations

from typing import Any

import hiredis
from redis.asyncio.connection import Connection, SSLConnection

__all__ = ["FastPackConnection", "FastPackSSLConnection"]


def _pack(connection: Any, args: tuple[Any, ...]) -> list[bytes]:
    first = args[0]
    if isinstance(first, str) and " " in first:
        args = (*first.split(), *args[1:])
    try:
        return [hiredis.pack_command(args)]
    except TypeError:
        return list(Connection.pack_command(connection, *args))


class FastPackConnection(Connection):
    def pack_command(self, *args: Any) -> list[bytes]:
        return _pack(self, args)


class FastPackSSLConnection(SSLConnection):
    def pack_command(self, *args: Any) -> list[bytes]:
        return _pack(self, args)
