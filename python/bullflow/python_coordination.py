"""Run coordination from the client: the pure-Python twin of the Lua coordination scripts.

:class:`PythonCoordinationStore` has the methods and results of
:class:`~bullflow.coordination.RedisCoordinationStore` and leaves Redis in the same state (keys,
hash fields and values, BullMQ job hashes, lists, sorted sets, events and markers, status JSON
text, TTLs and PUBLISHes), but instead of running ``lua/<script>.lua`` on the server it

1. WATCHes every key a decision depends on, then reads it (WATCH and the reads go out in one
   packet on the transaction's connection, so a batch costs one round trip);
2. replays the script line by line in Python against what it read (``_Run`` mirrors the
   ``lua/includes`` functions one to one), queueing each write command the script would issue,
   in the script's order, and applying it to a local view of the keys it touches;
3. sends the queued commands in one MULTI/EXEC. When a watched key changed meanwhile, EXEC
   aborts, nothing is written, and the whole operation starts again from fresh reads (at most
   :data:`MAX_ATTEMPTS` times, with a short random pause, then :class:`CoordinationConflictError`).

What is watched: the run hash (every decision), the state hash when its content is read (status
text, awaiting lists, ``HSETNX`` at start), the queue's meta hash, each job hash whose existence
decides between creating and "duplicated", the active list when the queue has a global
concurrency, and the delayed set when a job is delayed. bullmq changes a job's hash whenever the
job enters or leaves its completed/failed sets, so watching the job hashes covers the reconciler's
reads of those sets. Compiled graphs never change (the key is their content hash): each store
reads a graph once and afterwards only checks, in the same round trip as the run hash, that the
key still exists. Time for timestamps comes from Redis ``TIME``, read before MULTI. A typical
commit costs three round trips (run hash and time; job keys or state hash; MULTI/EXEC).

``store_graph`` does what ``storeGraph-1.lua`` does, under WATCH: EXISTS, then HSET of every field
when the key is absent (no Lua runs anywhere in this module).

Values the scripts re-encode with ``cjson`` (the run's error list, ``_awaitingDetails``,
``_awaitingNodeIds``, the awaiting details a node gives) are decoded into an emulation of Lua 5.1
tables (:class:`_LuaTable`) and encoded as Redis's ``cjson`` does (its escapes, ``%.14g``
numbers, empty tables as ``{}``, object keys in the Lua table's iteration order), so the JSON text
is byte for byte the script's. Which state fields ``buildStatus`` embeds as they are follows
``cjson.decode``'s own grammar (:func:`_cjson_decodable`), not Python's.

What this store cannot mirror:

* ``buildStatus`` lists the state hash's fields in the server's iteration order after the script's
  writes. This store predicts that order as Redis keeps a small (listpack) hash: insertion order,
  an overwrite in place, a new field last. Once Redis keeps the state as a hash table (more than
  ``hash-max-listpack-entries`` fields, or one value longer than ``hash-max-listpack-value``
  bytes: 128 and 64 by default) its iteration order depends on the server's random hash seed, and
  the context in the status JSON (and in its ``serializedContext`` text) then has the same
  members as the script's, in another order.
* A script that fails part-way with a Lua error (a malformed argument, a graph key deleted under
  a running run) keeps the writes it made before the error and raises a ``ResponseError``; this
  store raises :class:`~bullflow.exceptions.ScriptError` before writing anything.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError, WatchError

from . import keys
from ._impl import encode_value
from .compile import CompiledBlueprint
from .coordination import (
    CommitResult,
    NodeCommit,
    ReadyNode,
    RunOptions,
    graph_fields,
    start_run_call,
)
from .exceptions import ScriptError
from .scripts import ScriptCode

__all__ = ["MAX_ATTEMPTS", "CoordinationConflictError", "PythonCoordinationStore"]

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 100
"""How many times one operation is tried before a run's keys are deemed too contended."""

_T = TypeVar("_T")
_LOOP_MESSAGE = "Traversal exceeded maximum iterations, possible infinite loop"
_EXECUTE_NODE = keys.EXECUTE_NODE_JOB
# startRun's "hx": longer than a listpack value, so the run hash is a hash table while it runs
_RUN_HASH_FILLER = "-" * 65
# tableState's: a new run's state hash of a graph of this many static nodes or more is made a hash
# table by setting (and deleting at once) this field to the filler
_TABLE_STATE_NODES = 43
_TABLE_STATE_FIELD = "\0bullflow:table"


class CoordinationConflictError(ScriptError):
    """An operation of :class:`PythonCoordinationStore` lost the race for its keys (WATCH
    aborted its transaction) :data:`MAX_ATTEMPTS` times in a row. ``script`` names the Lua script
    it mirrors; nothing was written."""

    def __reduce__(self) -> Any:
        return (_rebuild_conflict, (self.message, self.script))


def _rebuild_conflict(message: str, script: str) -> CoordinationConflictError:
    return CoordinationConflictError(message, script=script)


# ------------------------------------------------------------------------------- Lua values
class _Nil:
    """Lua's nil inside an emulated table (``None`` is cjson's ``null``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "nil"


_NIL = _Nil()
_MASK = 0xFFFFFFFF


def _lua_hash(data: bytes) -> int:
    """Lua's string hash as Redis builds it (``lstring.c``; Redis hashes every byte, where stock
    Lua 5.1 skips bytes of strings of 32 bytes or more)."""
    h = len(data) & _MASK
    for byte in reversed(data):
        h = h ^ ((((h << 5) & _MASK) + (h >> 2) + byte) & _MASK)
    return h


class _LuaTable:
    """A Lua 5.1 table as far as cjson can see it: an array part (1..n) and a hash part of string
    keys whose node layout follows ``ltable.c`` (main positions, the free pointer, colliding nodes
    moved, rehash to the next power of two re-inserting from the last node), so iteration -- and
    hence the order cjson writes an object's keys in -- is Lua's."""

    __slots__ = ("_free", "_hashes", "_keys", "_nexts", "_size", "_values", "array")

    def __init__(self, hash_size: int = 0, array: list[Any] | None = None) -> None:
        self.array: list[Any] = array if array is not None else []
        self._nodes(hash_size)

    def _nodes(self, size: int) -> None:
        size = 0 if size == 0 else 1 << (size - 1).bit_length()
        self._size = size
        self._keys: list[str | None] = [None] * size
        self._values: list[Any] = [_NIL] * size
        self._nexts = [-1] * size
        self._hashes = [0] * size
        self._free = size

    def _find(self, key: str, h: int) -> int:
        if not self._size:
            return -1
        n = h & (self._size - 1)
        while n != -1:
            if self._keys[n] == key:
                return n
            n = self._nexts[n]
        return -1

    def _free_position(self) -> int:
        while self._free > 0:
            self._free -= 1
            if self._keys[self._free] is None:
                return self._free
        return -1

    def _slot(self, key: str, h: int) -> int:
        found = self._find(key, h)
        return found if found >= 0 else self._new_key(key, h)

    def _new_key(self, key: str, h: int) -> int:
        if not self._size:
            self._rehash()
            return self._slot(key, h)
        mp = h & (self._size - 1)
        if self._values[mp] is not _NIL:
            free = self._free_position()
            if free < 0:
                self._rehash()
                return self._slot(key, h)
            other = self._hashes[mp] & (self._size - 1)
            if other != mp:
                # The colliding node is out of its main position: move it to the free node.
                while self._nexts[other] != mp:
                    other = self._nexts[other]
                self._nexts[other] = free
                self._keys[free] = self._keys[mp]
                self._values[free] = self._values[mp]
                self._nexts[free] = self._nexts[mp]
                self._hashes[free] = self._hashes[mp]
                self._nexts[mp] = -1
                self._values[mp] = _NIL
            else:
                self._nexts[free] = self._nexts[mp]
                self._nexts[mp] = free
                mp = free
        self._keys[mp] = key
        self._hashes[mp] = h
        return mp

    def _rehash(self) -> None:
        live = [
            (cast("str", self._keys[n]), self._values[n], self._hashes[n])
            for n in range(self._size - 1, -1, -1)
            if self._values[n] is not _NIL
        ]
        self._nodes(len(live) + 1)
        for key, value, h in live:
            slot = self._slot(key, h)
            self._values[slot] = value

    def get(self, key: str) -> Any:
        found = self._find(key, _lua_hash(key.encode("utf-8", "surrogateescape")))
        return _NIL if found < 0 else self._values[found]

    def set(self, key: str, value: Any) -> None:
        """``t[key] = value`` (``value`` may be ``_NIL``: the key keeps its node, as in Lua)."""
        slot = self._slot(key, _lua_hash(key.encode("utf-8", "surrogateescape")))
        self._values[slot] = value

    def index(self, position: int) -> Any:
        """``t[position]`` (1-based)."""
        return self.array[position - 1] if 1 <= position <= len(self.array) else _NIL

    def items(self) -> Iterator[tuple[str, Any]]:
        for n in range(self._size):
            if self._values[n] is not _NIL:
                yield cast("str", self._keys[n]), self._values[n]


def _table(**fields: Any) -> _LuaTable:
    """A table constructor ``{ a = x, b = y }`` (hash part sized for its fields, set in order)."""
    table = _LuaTable(len(fields))
    for key, value in fields.items():
        table.set(key, value)
    return table


def _from_pairs(pairs: list[tuple[str, Any]]) -> _LuaTable:
    table = _LuaTable()
    for key, value in pairs:
        table.set(key, value)
    return table


def _lua_values(value: Any) -> Any:
    if isinstance(value, list):
        return _LuaTable(array=[_lua_values(v) for v in value])
    if isinstance(value, _LuaTable):
        for n, item in enumerate(value._values):
            if item is not _NIL:
                value._values[n] = _lua_values(item)
    return value


def _cjson_decode(text: bytes | str) -> Any:
    """``cjson.decode``: objects and arrays become :class:`_LuaTable`, numbers floats, ``null``
    ``None``."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogateescape")
    return _lua_values(json.loads(text, object_pairs_hook=_from_pairs, parse_int=float, strict=False))


_ESCAPES: dict[int, str] = {c: f"\\u{c:04x}" for c in range(32)}
_ESCAPES.update({8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r"})
_ESCAPES.update({34: '\\"', 47: "\\/", 92: "\\\\", 127: "\\u007f"})


def _cjson_string(text: str) -> str:
    return '"' + text.translate(_ESCAPES) + '"'


def _lua_number(value: float) -> str:
    """A Lua number as ``tostring``, ``..`` and cjson write it (``%.14g``)."""
    if isinstance(value, int) and abs(value) < 10**14:
        return str(value)
    return f"{float(value):.14g}"


def _cjson_encode(value: Any) -> str:
    """``cjson.encode`` as Redis ships it."""
    if value is None or value is _NIL:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _cjson_string(value)
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ScriptError("cjson cannot encode NaN or an infinity", script="python")
        return _lua_number(value)
    if isinstance(value, _LuaTable):
        members = list(value.items())
        if not members:
            if value.array:
                return "[" + ",".join(_cjson_encode(v) for v in value.array) + "]"
            return "{}"
        parts = [f'"{k + 1}":{_cjson_encode(v)}' for k, v in enumerate(value.array)]
        parts += [_cjson_string(k) + ":" + _cjson_encode(v) for k, v in members]
        return "{" + ",".join(parts) + "}"
    raise TypeError(f"cannot encode {type(value).__name__} as a Lua value")


# cjson.decode's grammar (Redis's lua_cjson), to tell which state fields buildStatus may embed as
# they are: strtod numbers (hex, inf, nan, leading zeros, "+1", "1."), strings that may hold raw
# control bytes but no lone surrogate escape, a NUL byte ending the text, nesting up to 1000.
_STRTOD = re.compile(
    rb"[+-]?(?:inf(?:inity)?|nan(?:\([0-9a-z_]*\))?"
    rb"|0x(?:[0-9a-f]+(?:\.[0-9a-f]*)?|\.[0-9a-f]+)(?:p[+-]?[0-9]+)?"
    rb"|(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:e[+-]?[0-9]+)?)",
    re.IGNORECASE,
)
_HEX4 = re.compile(rb"[0-9a-fA-F]{4}")
_PLAIN = re.compile(rb'[^"\\]*')
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_ESCAPED = frozenset(b'"\\/bfnrt')
_WHITESPACE = frozenset(b" \t\n\r")
_PUNCTUATION = frozenset(b"{}[],:")
_WORDS = (b"true", b"false", b"null")
_MAX_DEPTH = 1000


class _Undecodable(Exception):
    pass


def _hex4(data: bytes, k: int) -> int:
    match = _HEX4.match(data, k)
    if match is None:
        raise _Undecodable
    return int(match.group(), 16)


def _string_end(data: bytes, k: int) -> int:
    k += 1
    while True:
        k = cast("re.Match[bytes]", _PLAIN.match(data, k)).end()
        if k >= len(data):
            raise _Undecodable
        if data[k] == 0x22:
            return k + 1
        escape = data[k + 1 : k + 2]
        if escape == b"u":
            code = _hex4(data, k + 2)
            if code & 0xF800 == 0xD800:
                if code & 0x400 or data[k + 6 : k + 8] != b"\\u" or _hex4(data, k + 8) & 0xFC00 != 0xDC00:
                    raise _Undecodable
                k += 12
            else:
                k += 6
        elif escape and escape[0] in _ESCAPED:
            k += 2
        else:
            raise _Undecodable


def _token(data: bytes, k: int) -> tuple[str, int]:
    n = len(data)
    while k < n and data[k] in _WHITESPACE:
        k += 1
    if k >= n:
        return "end", k
    c = data[k]
    if c in _PUNCTUATION:
        return chr(c), k + 1
    if c == 0x22:
        return "string", _string_end(data, k)
    for word in _WORDS:
        if data.startswith(word, k):
            return "scalar", k + len(word)
    if c in b"+-0123456789" or data[k : k + 3].lower() in (b"inf", b"nan"):
        match = _STRTOD.match(data, k)
        if match is None:
            raise _Undecodable
        return "scalar", match.end()
    raise _Undecodable


def _parses(data: bytes) -> bool:
    closers: list[str] = []
    kind, k = _token(data, 0)
    while True:
        if kind in ("{", "["):
            if len(closers) >= _MAX_DEPTH:
                return False
            close = "}" if kind == "{" else "]"
            kind, k = _token(data, k)
            if kind != close:
                closers.append(close)
                if close == "}":
                    if kind != "string" or _token(data, k)[0] != ":":
                        return False
                    kind, k = _token(data, _token(data, k)[1])
                continue
        elif kind not in ("string", "scalar"):
            return False
        while True:
            kind, k = _token(data, k)
            if not closers:
                return kind == "end"
            if kind == closers[-1]:
                closers.pop()
                continue
            if kind != ",":
                return False
            kind, k = _token(data, k)
            if closers[-1] == "}":
                if kind != "string" or _token(data, k)[0] != ":":
                    return False
                kind, k = _token(data, _token(data, k)[1])
            break


def _cjson_decodable(data: bytes) -> bool:
    """``pcall(cjson.decode, data)`` succeeds (what Python's parser accepts, cjson accepts too,
    unless nesting, a NUL byte or a surrogate escape is involved)."""
    if (
        b"\x00" not in data
        and not _SURROGATE_ESCAPE.search(data)
        and data.count(b"[") + data.count(b"{") <= _MAX_DEPTH
    ):
        try:
            json.loads(data.decode("utf-8", "surrogateescape"), strict=False)
            return True
        except (ValueError, RecursionError):
            pass
    if len(data) >= 2 and (data[0] == 0 or data[1] == 0):
        return False  # cjson refuses what looks like UTF-16 or UTF-32
    try:
        return _parses(data.split(b"\x00", 1)[0])
    except _Undecodable:
        return False


_JSON_NUMBER = re.compile(rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_JSON_STRING = re.compile(rb'"(?:[^"\\\x00-\x1f\x7f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"')
_JSON_SPACE = re.compile(rb"[ \t\n\r]*")
_JSON_WORD = re.compile(rb"true|false|null")


def _is_json_text(data: bytes) -> bool:
    """``isJsonText`` (lua/includes/isJsonText.lua): one RFC 8259 JSON text, nested at most 512
    deep, byte-wise (string contents are not checked for UTF-8, as in the script)."""
    pos = _JSON_SPACE.match(data, 0).end()  # type: ignore[union-attr]
    closers: list[bytes] = []
    expect_value = True
    while True:
        if expect_value:
            c = data[pos : pos + 1]
            if c in (b"{", b"["):
                if len(closers) + 1 > 512:
                    return False
                close = b"}" if c == b"{" else b"]"
                pos = _JSON_SPACE.match(data, pos + 1).end()  # type: ignore[union-attr]
                if data[pos : pos + 1] == close:
                    pos += 1
                    expect_value = False
                    continue
                closers.append(close)
                if close == b"}":
                    key = _JSON_STRING.match(data, pos)
                    if key is None:
                        return False
                    pos = _JSON_SPACE.match(data, key.end()).end()  # type: ignore[union-attr]
                    if data[pos : pos + 1] != b":":
                        return False
                    pos = _JSON_SPACE.match(data, pos + 1).end()  # type: ignore[union-attr]
                continue
            match = (
                _JSON_STRING.match(data, pos)
                if c == b'"'
                else _JSON_WORD.match(data, pos)
                if c in (b"t", b"f", b"n")
                else _JSON_NUMBER.match(data, pos)
            )
            if match is None:
                return False
            pos = match.end()
            expect_value = False
            continue
        pos = _JSON_SPACE.match(data, pos).end()  # type: ignore[union-attr]
        if not closers:
            return pos == len(data)
        c = data[pos : pos + 1]
        pos += 1
        if c == closers[-1]:
            closers.pop()
            continue
        if c != b",":
            return False
        pos = _JSON_SPACE.match(data, pos).end()  # type: ignore[union-attr]
        if closers[-1] == b"}":
            key = _JSON_STRING.match(data, pos)
            if key is None:
                return False
            pos = _JSON_SPACE.match(data, key.end()).end()  # type: ignore[union-attr]
            if data[pos : pos + 1] != b":":
                return False
            pos = _JSON_SPACE.match(data, pos + 1).end()  # type: ignore[union-attr]
        expect_value = True


def _truthy(value: Any) -> bool:
    """Lua truth: everything but nil and false (cjson's null is true)."""
    return value is not _NIL and value is not False


def _field(table: Any, key: str) -> Any:
    """``table.key`` for a value of any type (nil unless it is a table)."""
    return table.get(key) if isinstance(table, _LuaTable) else _NIL


def _tonumber(raw: Any) -> float | int | None:
    """Lua's ``tonumber`` of a Redis reply or a decoded value (ints stay ints)."""
    if isinstance(raw, bool) or raw is None or raw is _NIL:
        return None
    if isinstance(raw, (int, float)):
        return raw
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "surrogateescape")
    if not isinstance(raw, str):
        return None
    text = raw.strip()
    if not text or "_" in text:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return int(text, 16) if text.lower().startswith(("0x", "-0x", "+0x")) else None
    except ValueError:
        return None


def _num(raw: Any, default: int = 0) -> float | int:
    """``tonumber(raw or "<default>")``."""
    value = _tonumber(raw if raw is not None else str(default))
    if value is None:
        raise ScriptError(f"expected a number, found {raw!r}", script="python")
    return value


def _lua_str(value: Any) -> str:
    """A string or a number as Lua's ``..`` writes it."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _lua_number(value)
    raise ScriptError(f"cannot concatenate a {type(value).__name__}", script="python")


def _str(raw: bytes | str) -> str:
    return raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else raw


def _bytes(raw: Any) -> bytes:
    if isinstance(raw, bytes):
        return raw
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape")
    if isinstance(raw, bool):
        raise TypeError("a bool is not a Redis value")
    if isinstance(raw, int):
        return str(raw).encode()
    if isinstance(raw, float):
        return f"{raw:.17g}".encode()  # how Redis 7.0 turns a Lua number into an argument
    raise TypeError(f"{type(raw).__name__} is not a Redis value")


def _opt_bytes(raw: Any) -> bytes | None:
    return None if raw is None else _bytes(raw)


def _pairs(reply: Any) -> dict[bytes, bytes]:
    """An HGETALL reply (a flat RESP2 list or a RESP3 map) in the server's order."""
    if isinstance(reply, dict):
        return {_bytes(k): _bytes(v) for k, v in reply.items()}
    items = list(reply or [])
    return {_bytes(items[k]): _bytes(items[k + 1]) for k in range(0, len(items), 2)}


def _scored(reply: Any) -> list[tuple[bytes, float]]:
    """A WITHSCORES reply as (member, score) pairs."""
    items = list(reply or [])
    if items and isinstance(items[0], (list, tuple)):
        return [(_bytes(m), float(s)) for m, s in items]
    return [(_bytes(items[k]), float(items[k + 1])) for k in range(0, len(items), 2)]


# ------------------------------------------------------------------------------ transactions
_Command = tuple[Any, ...]


class _Retry(Exception):
    """What this attempt read no longer fits together: start over (like a WATCH conflict)."""


class _HashView:
    """A hash as the transaction sees it: what was read from the server (after WATCH) with the
    transaction's queued writes applied. ``values`` is the whole hash once loaded, in the order a
    small (listpack) hash keeps: a new field last, an overwritten one in place."""

    __slots__ = ("known", "log", "values")

    def __init__(self) -> None:
        self.values: dict[bytes, bytes] | None = None
        self.known: dict[bytes, bytes | None] = {}
        self.log: list[tuple[bytes, bytes | None]] = []

    def lookup(self, name: bytes) -> tuple[bool, bytes | None]:
        if self.values is not None:
            return True, self.values.get(name)
        if name in self.known:
            return True, self.known[name]
        return False, None

    def get(self, name: bytes) -> bytes | None:
        known, value = self.lookup(name)
        if not known:
            raise RuntimeError(f"field {name!r} was not read")
        return value

    def put(self, name: bytes, value: bytes | None) -> None:
        self.known[name] = value
        self.log.append((name, value))
        if self.values is not None:
            if value is None:
                self.values.pop(name, None)
            else:
                self.values[name] = value

    def absorb(self, name: bytes, value: bytes | None) -> None:
        """A field read from the server (writes queued before win)."""
        if self.values is None and name not in self.known:
            self.known[name] = value

    def load(self, server: dict[bytes, bytes]) -> None:
        values = dict(server)
        for name, value in self.log:
            if value is None:
                values.pop(name, None)
            else:
                values[name] = value
        self.values = values


class _Tx:
    """One attempt of one operation: reads on the WATCHing connection, writes queued for
    MULTI/EXEC, and the local view of the keys those writes change."""

    def __init__(self, pipe: Pipeline) -> None:
        self._pipe = pipe
        self._watched: set[str] = set()
        self.writes: list[_Command] = []
        self.hashes: dict[str, _HashView] = {}
        self.exists: dict[str, bool] = {}
        self.lists: dict[str, int] = {}

    async def read(self, watch: Iterable[str], *commands: _Command) -> list[Any]:
        """WATCH the keys of ``watch`` not watched yet, then run ``commands``: one packet, one
        round trip. Returns the commands' raw replies."""
        fresh = [k for k in dict.fromkeys(watch) if k not in self._watched]
        batch: list[_Command] = ([("WATCH", *fresh)] if fresh else []) + list(commands)
        if not batch:
            return []
        pipe = self._pipe
        conn = pipe.connection
        if conn is None:
            pool: Any = pipe.connection_pool
            conn = await pool.get_connection()
            pipe.connection = conn
        assert conn is not None
        replies: list[Any] = []
        try:
            await conn.send_packed_command(conn.pack_commands(batch))
            for command in batch:
                try:
                    replies.append(await pipe.parse_response(conn, "WATCH" if command[0] == "WATCH" else "_"))
                except ResponseError as err:
                    replies.append(err)
        except BaseException:
            await conn.disconnect()
            raise
        self._watched.update(fresh)
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise reply
        return replies[1:] if fresh else replies

    async def commit(self) -> None:
        """MULTI, the queued writes, EXEC (raises WatchError when a watched key changed)."""
        pipe: Any = self._pipe
        pipe.multi()
        for command in self.writes:
            pipe.execute_command(*command)
        await pipe.execute()

    # ------------------------------------------------------------------------ queued writes
    def call(self, *command: Any) -> None:
        self.writes.append(tuple(_bytes(a) for a in command))

    def view(self, key: str) -> _HashView:
        view = self.hashes.get(key)
        if view is None:
            view = self.hashes[key] = _HashView()
        return view

    def hset(self, key: str, *pairs: Any) -> None:
        self.call("HSET", key, *pairs)
        view = self.view(key)
        for k in range(0, len(pairs), 2):
            view.put(_bytes(pairs[k]), _bytes(pairs[k + 1]))

    def hdel(self, key: str, *names: Any) -> None:
        self.call("HDEL", key, *names)
        view = self.view(key)
        for name in names:
            view.put(_bytes(name), None)

    def hincrby(self, key: str, name: str, amount: int) -> int:
        view = self.view(key)
        field = _bytes(name)
        value = int(_num(view.get(field))) + amount
        self.call("HINCRBY", key, name, amount)
        view.put(field, str(value).encode())
        return value

    def hsetnx(self, key: str, name: str, value: Any) -> None:
        self.call("HSETNX", key, name, value)
        view = self.view(key)
        if view.get(_bytes(name)) is None:
            view.put(_bytes(name), _bytes(value))

    # --------------------------------------------------------------------------- hash reads
    async def load_hash(self, key: str) -> dict[bytes, bytes]:
        """The whole hash (HGETALL, watched) with this transaction's writes applied."""
        view = self.view(key)
        if view.values is None:
            (reply,) = await self.read([key], ("HGETALL", key))
            view.load(_pairs(reply))
        assert view.values is not None
        return view.values

    async def hget(self, key: str, *names: str) -> list[bytes | None]:
        """Fields of a hash (HMGET of those not known yet, watched)."""
        view = self.view(key)
        wanted = [n for n in names if not view.lookup(_bytes(n))[0]]
        if wanted:
            (reply,) = await self.read([key], ("HMGET", key, *wanted))
            for name, value in zip(wanted, reply, strict=True):
                view.absorb(_bytes(name), _opt_bytes(value))
        return [view.get(_bytes(n)) for n in names]


# ------------------------------------------------------------------------------- the graph
@dataclass(frozen=True, slots=True)
class _Record:
    """``nodeRecord``: the scheduling record of one node."""

    id: Any
    any: bool
    lc: bool
    fb: int
    ls: int
    npreds: int
    back: frozenset[int]
    edges: tuple[tuple[int, int, int], ...]  # (edge, source, target)
    body: tuple[int, ...]
    opts: str


class _Graph:
    """A stored graph hash (``bullflow:graph:<hash>``), read once: graphs never change."""

    def __init__(self, key: str, fields: dict[bytes, bytes]) -> None:
        self.key = key
        self.fields = fields
        self._records: dict[int, _Record] = {}

    def field(self, name: str) -> bytes | None:
        return self.fields.get(_bytes(name))

    def record(self, i: int) -> _Record:
        record = self._records.get(i)
        if record is not None:
            return record
        raw = self.field(str(i))
        if raw is None:
            raise ScriptError(f"node {i} is not in the graph {self.key}", script="python")
        v = json.loads(_str(raw))
        opts = self.field(f"o:{i}")
        record = _Record(
            id=_str(self.field(f"id:{i}") or b""),
            any=v[0] == 1,
            lc=v[1] == 1,
            fb=int(v[2]),
            ls=int(v[3]),
            npreds=len(v[4]),
            back=frozenset(int(p) for p in v[5]),
            edges=tuple((int(e[0]), int(e[1]), int(e[2])) for e in v[6]),
            body=tuple(int(b) for b in v[7]),
            opts=_str(opts) if opts is not None else "",
        )
        self._records[i] = record
        return record


@dataclass(frozen=True, slots=True)
class _QueueKeys:
    wait: str
    meta: str
    id: str
    active: str
    events: str
    marker: str
    delayed: str
    completed: str
    failed: str
    stalled: str
    prioritized: str


# ---------------------------------------------------------------------------- one run (Lua)
class _Run:
    """The table ``loadRun`` returns, with the ``lua/includes`` functions as methods (same names,
    same order of writes). The run hash is read whole when the run is loaded."""

    def __init__(
        self,
        tx: _Tx,
        queue: _QueueKeys,
        run_id: str,
        state_key: str | None,
        run_key: str,
        graph: _Graph | None,
        status_key: str | None,
        now: int,
    ) -> None:
        self.tx = tx
        self.q = queue
        self.id = run_id
        self.state_key = state_key
        self.run_key = run_key
        self.graph = graph
        self.status_key = status_key
        self.h = tx.view(run_key)
        self.now = now
        self.blueprint_id = _str(self.h.get(b"bp") or b"")
        self.nstatic = int(_num(self.h.get(b"n")))
        self.ndynamic = int(_num(self.h.get(b"nd")))
        self.status: str | None = _opt_str(self.h.get(b"st"))
        self.max_waves = _num(self.h.get(b"mw"))
        self.ttl = _num(self.h.get(b"ttl"))
        self.queue = _str(self.h.get(b"q") or b"")
        self.channel = self.h.get(b"ch") or b""
        stored = _str(self.h.get(b"jo") or b"")
        self.job_opts = "," + stored if stored else ""
        self.records: dict[int, _Record] = {}
        self.statuses: dict[int, int] = {}
        self.ready: list[int] = []
        self.skipped: list[int] = []
        self.loop_error: int | None = None
        self.fetching = False  # the committing worker takes the next waiting job right after
        self.skip_marker = False

    # -- run hash access
    def get(self, name: str) -> bytes | None:
        return self.h.get(_bytes(name))

    def hset(self, *pairs: Any) -> None:
        self.tx.hset(self.run_key, *pairs)

    def compact_run(self, ttl: float) -> bool:
        """``compactRun``: the filler field ``hx`` goes, and a run hash of at most 128 fields is
        written anew (the script's DUMP/RESTORE: the same fields, a compact listpack again), with
        a TTL of ``ttl`` seconds (0: none). True when it was written anew."""
        values = self.h.values
        assert values is not None  # every operation that publishes a status read the whole hash
        if values.get(b"hx") is None:
            return False
        self.tx.hdel(self.run_key, "hx")
        if len(values) > 128:
            return False
        self.tx.call("DEL", self.run_key)
        self.tx.call("HSET", self.run_key, *(x for pair in values.items() for x in pair))
        if ttl > 0:
            self.tx.call("EXPIRE", self.run_key, ttl)
        return True

    # -- nodeRecord / nodeStatus / setNodeStatus
    def node_record(self, i: int) -> _Record:
        record = self.records.get(i)
        if record is not None:
            return record
        if i < self.nstatic:
            if self.graph is None:
                raise ScriptError("the run's graph was not given", script="python")
            record = self.graph.record(i)
        else:
            raw = self.get(f"d:{i}")
            if raw is None:
                raise ScriptError(f"node {i} is not a node of run {self.id}", script="python")
            v = json.loads(_str(raw))
            record = _Record(
                id=v["id"],
                any=False,
                lc=False,
                fb=-1,
                ls=-1,
                npreds=len(v["preds"]),
                back=frozenset(),
                edges=tuple((-1, i, int(t)) for t in v["targets"]),
                body=(),
                opts="",
            )
        self.records[i] = record
        return record

    def node_status(self, i: int) -> int:
        status = self.statuses.get(i)
        if status is None:
            status = self.statuses[i] = int(_num(self.get(f"s:{i}")))
        return status

    def set_node_status(self, i: int, status: int) -> None:
        self.statuses[i] = status
        if status == 0:
            self.tx.hdel(self.run_key, f"s:{i}")
        else:
            self.hset(f"s:{i}", status)

    # -- addToSet / clearNodeSets (and the set sizes that resolveAt reads)
    def add_to_set(self, name: str, p: int) -> bool:
        text = _str(self.get(name) or b",")
        item = f",{p},"
        if item in text:
            return False
        self.hset(name, f"{text}{p},")
        self.tx.hincrby(self.run_key, name + "#", 1)
        return True

    def set_size(self, name: str) -> float | int:
        return _num(self.get(name + "#"))

    def clear_node_sets(self, i: int, extra: bool) -> None:
        self.tx.hdel(self.run_key, f"a:{i}", f"a:{i}#", f"r:{i}", f"r:{i}#")
        if extra:
            self.tx.hdel(self.run_key, f"x:{i}", f"x:{i}#")

    # -- makeReady / resetLoopBody / isWaitingOn / propagate / completeNodeState
    def make_ready(self, t: int, w: float | int) -> None:
        if w > self.max_waves:
            if self.loop_error is None:
                self.loop_error = t
            return
        previous = self.get(f"w:{t}")
        self.set_node_status(t, 1)
        self.hset(f"w:{t}", w)
        if previous is not None:
            self.tx.hincrby(self.run_key, f"it:{t}", 1)
        self.clear_node_sets(t, False)
        self.ready.append(t)

    def reset_loop_body(self, body: Iterable[int]) -> None:
        for b in body:
            if self.node_status(b) in (3, 4, 0):
                self.set_node_status(b, 0)
                self.clear_node_sets(b, True)

    def is_waiting_on(self, t: int) -> bool:
        record = self.node_record(t)
        return self.set_size(f"r:{t}") < record.npreds + self.set_size(f"x:{t}")

    def propagate(self, items: list[tuple[int, int, bool]], w: float | int) -> None:
        head = 0
        while head < len(items):
            t, p, arrived = items[head]
            head += 1
            record = self.node_record(t)
            status = self.node_status(t)
            if status != 0:
                if arrived and status == 3 and record.lc:
                    self.make_ready(t, w)
            elif p in record.back:
                if arrived:
                    self.add_to_set(f"a:{t}", p)
                    if record.lc or record.any or not self.is_waiting_on(t):
                        self.make_ready(t, w)
            elif arrived and (record.lc or record.any):
                self.make_ready(t, w)
            else:
                if arrived:
                    self.add_to_set(f"a:{t}", p)
                self.add_to_set(f"r:{t}", p)
                if not self.is_waiting_on(t):
                    if self.set_size(f"a:{t}") > 0:
                        self.make_ready(t, w)
                    else:
                        self.set_node_status(t, 4)
                        self.skipped.append(t)
                        seen: set[int] = set()
                        for _, source, target in record.edges:
                            if source == t and target not in seen:
                                seen.add(target)
                                items.append((target, t, False))
                        if record.fb >= 0:
                            items.append((record.fb, t, False))

    def complete_node_state(self, i: int, taken: set[int] | None) -> None:
        record = self.node_record(i)
        self.set_node_status(i, 3)
        w = _num(self.get(f"w:{i}")) + 1
        original = _num(self.get(f"ff:{i}"), -1)
        if original >= 0:
            self.tx.hdel(self.run_key, f"ff:{i}")
        taken_pairs = {
            (source, target) for edge, source, target in record.edges if taken is None or edge in taken
        }
        continuing = False
        if record.lc and record.ls >= 0:
            continuing = any(
                target == record.ls and (source, target) in taken_pairs for _, source, target in record.edges
            )
            if continuing:
                self.reset_loop_body(record.body)
        items: list[tuple[int, int, bool]] = []
        seen: set[tuple[int, int]] = set()
        for _, source, target in record.edges:
            pair = (source, target)
            if (source == i or source == original) and pair not in seen:
                seen.add(pair)
                is_taken = pair in taken_pairs
                if is_taken or not continuing:
                    items.append((target, source, is_taken))
        if record.fb >= 0:
            items.append((record.fb, i, False))
        self.propagate(items, w)

    # -- recordError / buildStatus / publishStatus / settleRun
    def record_error(self, node_id: Any, message: Any) -> None:
        errors = _cjson_decode(self.get("err") or b"[]")
        if not isinstance(errors, _LuaTable):
            raise ScriptError(f"run {self.id}: its error list is not a JSON list", script="python")
        errors.array.append(_table(nodeId=node_id, message=message))
        self.hset("err", _cjson_encode(errors))

    async def build_status(self, status: str, reason: Any) -> str:
        assert self.state_key is not None
        flat = await self.tx.load_hash(self.state_key)
        parts = []
        for name, value in flat.items():
            if value == b"":
                shown = "null"
            elif _is_json_text(value):
                shown = _str(value)
            else:  # a corrupt field is reported as its text, never breaks the JSON
                shown = _cjson_string(_str(value))
            parts.append(_cjson_string(_str(name)) + ":" + shown)
        context = "{" + ",".join(parts) + "}"
        errors = _str(self.get("err") or b"[]")
        text = (
            '{"status":'
            + _cjson_string(status)
            + ',"payload":{"context":'
            + context
            + ',"serializedContext":'
            + _cjson_string(context)
            + ',"status":'
            + _cjson_string(status)
            + ',"errors":'
            + errors
            + "}"
        )
        if _truthy(reason):
            text += ',"reason":' + _cjson_encode(reason)
        return text + "}"

    async def publish_status(self, status: str, reason: Any) -> str:
        assert self.status_key is not None and self.state_key is not None
        text = await self.build_status(status, reason)
        self.status = status
        if status == "awaiting":
            self.hset("st", status, "lu", self.now)
            self.compact_run(0)
            self.tx.call("SET", self.status_key, text)
        else:
            self.hset("st", status, "lu", self.now, "tf", self.now)
            self.tx.call("HINCRBY", keys.METRICS_KEY, f"rc:{status}", 1)
            self.count_latency("rl", max(0, self.now - int(_num(self.get("ts")))))
            if self.ttl > 0:
                self.tx.call("SET", self.status_key, text, "EX", self.ttl)
                self.tx.call("EXPIRE", self.state_key, self.ttl)
                if not self.compact_run(self.ttl):
                    self.tx.call("EXPIRE", self.run_key, self.ttl)
            else:
                self.tx.call("SET", self.status_key, text)
                self.compact_run(0)
        self.log_run(f"run-{status}", None, reason if _truthy(reason) else None)
        if status != "awaiting" and self.ttl > 0:
            self.tx.call("EXPIRE", keys.run_log_key(self.id), self.ttl)
        self.tx.call("PUBLISH", self.channel, text)
        return text

    # -- logRun / countLatency / trackNode (run tracking)
    def log_run(self, kind: str, node_id: Any, message: Any) -> None:
        self.tx.call(
            "XADD",
            keys.run_log_key(self.id),
            "MAXLEN",
            "~",
            1000,
            "*",
            "type",
            kind,
            "node",
            _lua_str(node_id) if node_id is not None else "",
            "msg",
            _lua_str(message) if message is not None else "",
        )

    def count_latency(self, name: str, ms: float | int) -> None:
        le = next((str(bound) for bound in _LATENCY_BUCKETS_MS if ms <= bound), "inf")
        self.tx.call("HINCRBY", keys.METRICS_KEY, f"{name}:{le}", 1)
        self.tx.call("HINCRBY", keys.METRICS_KEY, f"{name}s", int(ms))

    def track_node(self, i: int, kind: str, task: _Task, err: str | None, counted: str | None) -> None:
        record = (
            '{"a":'
            + _lua_number(task.attempt)
            + ',"t0":'
            + _lua_number(task.started)
            + ',"t1":'
            + _lua_number(self.now)
        )
        if err:
            record += ',"e":' + _cjson_string(err)
        self.hset(f"k:{i}", record + "}")
        self.log_run(kind, self.node_record(i).id, err)
        if counted:
            self.tx.call("HINCRBY", keys.METRICS_KEY, "nc" if counted == "ok" else "nf", 1)
            if task.started > 0:
                self.count_latency("nl", max(0, self.now - task.started))
            minute = keys.metrics_minute_key(self.now - self.now % 60000)
            self.tx.call("INCR", minute)
            self.tx.call("EXPIRE", minute, 3900)

    async def settle_run(self) -> str | None:
        if _num(self.get("out")) > 0:
            return None
        errors = self.get("err")
        if errors is not None:
            first = _cjson_decode(errors)
            first = first.index(1) if isinstance(first, _LuaTable) else _NIL
            message = _field(first, "message") if _truthy(first) else _NIL
            await self.publish_status("failed", message if _truthy(message) else "failed")
            return "failed"
        if _num(self.get("aw")) > 0:
            await self.publish_status("awaiting", _NIL)
            return "awaiting"
        await self.publish_status("completed", _NIL)
        return "completed"

    # -- readQueueMeta / enqueueNode / enqueueReady
    def job_id(self, i: int, it: float | int) -> str:
        record = self.node_record(i)
        return keys.job_id(self.id, _lua_str(record.id), int(it))

    async def prefetch_jobs(self, job_keys: Sequence[str], *extra: _Command) -> list[Any]:
        """Reads enqueueNode needs for these job keys in one round trip (meta fields and job
        existence, watched), plus ``extra`` commands; returns the replies of ``extra``."""
        tx = self.tx
        meta = tx.view(self.q.meta)
        meta_fields = ("opts.maxLenEvents", "paused", "concurrency")
        missing_meta = [f for f in meta_fields if not meta.lookup(_bytes(f))[0]]
        unknown = [k for k in dict.fromkeys(job_keys) if k not in tx.exists]
        commands: list[_Command] = []
        if missing_meta:
            commands.append(("HMGET", self.q.meta, *missing_meta))
        commands += [("EXISTS", k) for k in unknown]
        commands += list(extra)
        if not commands:
            return []
        replies = await tx.read([self.q.meta, *unknown], *commands)
        if missing_meta:
            for name, value in zip(missing_meta, replies.pop(0), strict=True):
                meta.absorb(_bytes(name), _opt_bytes(value))
        for k in unknown:
            tx.exists[k] = int(replies.pop(0)) == 1
        return replies

    async def max_events(self) -> bytes:
        (value,) = await self.tx.hget(self.q.meta, "opts.maxLenEvents")
        if value is None:
            value = b"10000"
            self.tx.hset(self.q.meta, "opts.maxLenEvents", 10000)
        return value

    async def enqueue_node(self, i: int, it: float | int, delay: int) -> str:
        tx, q = self.tx, self.q
        record = self.node_record(i)
        job_id = self.job_id(i, it)
        job_key = self.queue + job_id
        await self.prefetch_jobs([job_key])
        max_events = await self.max_events()
        tx.call("INCR", q.id)
        if tx.exists[job_key]:
            tx.call("XADD", q.events, "MAXLEN", "~", max_events, "*", "event", "duplicated", "jobId", job_id)
            return job_id
        data = (
            '{"runId":'
            + _cjson_string(self.id)
            + ',"blueprintId":'
            + _cjson_string(self.blueprint_id)
            + ',"nodeId":'
            + _cjson_encode(record.id)
        )
        if it > 0:
            data += ',"iteration":' + _lua_number(it)
        if i >= self.nstatic:
            data += ',"index":' + _lua_number(i)
        data += "}"
        opts = '{"jobId":' + _cjson_string(job_id) + record.opts + self.job_opts
        if delay > 0:
            opts += ',"delay":' + _lua_number(delay)
        opts += "}"
        job = {"name": _EXECUTE_NODE, "data": data, "opts": opts, "timestamp": self.now, "delay": delay}
        tx.call("HMSET", job_key, *(x for pair in job.items() for x in pair), "priority", 0)
        tx.exists[job_key] = True
        tx.call("XADD", q.events, "*", "event", "added", "jobId", job_id, "name", _EXECUTE_NODE)
        if delay > 0:
            at = self.now + delay
            min_score = at * 0x1000
            max_score = (at + 1) * 0x1000 - 1
            last_reply, first_reply = await tx.read(
                [q.delayed],
                ("ZREVRANGEBYSCORE", q.delayed, max_score, min_score, "WITHSCORES", "LIMIT", 0, 1),
                ("ZRANGE", q.delayed, 0, 1, "WITHSCORES"),
            )
            score: float | int = min_score
            last = _scored(last_reply)
            if last:
                current = last[0][1]
                score = max_score if current >= max_score else current + 1
            tx.call("ZADD", q.delayed, score, job_id)
            event = ("event", "delayed", "jobId", job_id, "delay", at)
            tx.call("XADD", q.events, "MAXLEN", "~", max_events, "*", *event)
            member = _bytes(job_id)
            candidates = [(s, m) for m, s in _scored(first_reply) if m != member]
            candidates.append((float(score), member))
            next_at = min(candidates)[0]
            tx.call("ZADD", q.marker, next_at / 0x1000, "1")
        else:
            paused, concurrency = await tx.hget(q.meta, "paused", "concurrency")
            paused_or_maxed = paused is not None
            if not paused_or_maxed and concurrency is not None:
                if q.active not in tx.lists:
                    (length,) = await tx.read([q.active], ("LLEN", q.active))
                    tx.lists[q.active] = int(length)
                paused_or_maxed = tx.lists[q.active] >= _num(concurrency)
            tx.call("LPUSH", q.wait, job_id)
            if not paused_or_maxed and not self.skip_marker:
                tx.call("ZADD", q.marker, 0, "0")
            tx.call("XADD", q.events, "MAXLEN", "~", max_events, "*", "event", "waiting", "jobId", job_id)
        return job_id

    async def enqueue_ready(self) -> int:
        self.skip_marker = False
        if self.fetching and len(self.ready) == 1:  # enqueueReady: the committer takes it itself
            (waiting,) = await self.tx.read([], ("LLEN", self.q.wait))
            self.skip_marker = int(waiting) == 0
        its = {t: _num(self.get(f"it:{t}")) for t in self.ready}
        await self.prefetch_jobs([self.queue + self.job_id(t, its[t]) for t in self.ready])
        for t in self.ready:
            await self.enqueue_node(t, its[t], 0)
        if self.ready:
            self.tx.hincrby(self.run_key, "out", len(self.ready))
        if self.loop_error is not None:
            self.record_error(self.node_record(self.loop_error).id, _LOOP_MESSAGE)
        return len(self.ready)


_LATENCY_BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)


@dataclass(frozen=True, slots=True)
class _Task:
    """What ``readTask`` reads: the execution's attempt number, start (ms) and error text."""

    attempt: int = 0
    started: int = 0
    err: str = ""


def _opt_str(raw: bytes | None) -> str | None:
    return None if raw is None else _str(raw)


def _json(value: Any) -> str:
    return encode_value(value).decode()


# ------------------------------------------------------------------------------- the store
class PythonCoordinationStore:
    """Coordination from the client with WATCH/MULTI/EXEC: the same operations, results and Redis
    state as :class:`~bullflow.coordination.RedisCoordinationStore` (see the module docstring)."""

    def __init__(
        self,
        redis: Redis,
        queue_name: str = keys.DEFAULT_QUEUE,
        queue_prefix: str = keys.DEFAULT_QUEUE_PREFIX,
    ) -> None:
        self.redis = redis
        self.queue_name = queue_name
        self.queue_prefix = queue_prefix
        qk = keys.queue_keys(queue_name, queue_prefix)
        self._queue = _QueueKeys(**{name: qk[name] for name in keys.QUEUE_KEY_NAMES})
        self._stored: set[str] = set()
        self._graphs: dict[str, _Graph] = {}

    # ------------------------------------------------------------------------- machinery
    async def _transact(self, script: str, body: Callable[[_Tx], Awaitable[_T]]) -> _T:
        """Run ``body`` (reads, then queued writes) and commit; on a WATCH conflict start over."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            async with self.redis.pipeline(transaction=True) as pipe:
                tx = _Tx(pipe)
                try:
                    result = await body(tx)
                    await tx.commit()
                    return result
                except (WatchError, _Retry):
                    logger.debug("%s: keys changed during attempt %d, trying again", script, attempt)
            await asyncio.sleep(random.uniform(0, min(0.05, 0.0005 * 2 ** min(attempt, 7))))
        raise CoordinationConflictError(
            f"gave up after {MAX_ATTEMPTS} attempts: other clients kept changing the keys it watches",
            script=script,
        )

    def _graph_read(self, key: str) -> _Command:
        """The read that goes with a run's first batch: the whole graph the first time, then
        only whether it still exists (a flushed graph is missing for this store too)."""
        return ("EXISTS", key) if key in self._graphs else ("HGETALL", key)

    def _graph(self, key: str, read: _Command, reply: Any) -> _Graph:
        """The graph from the reply to ``read`` (another operation may have cached it since)."""
        if read[0] == "EXISTS":
            cached = self._graphs.get(key)
            if int(reply) == 1 and cached is not None:
                return cached
            self._graphs.pop(key, None)
            if int(reply) == 1:  # evicted meanwhile by an operation that found it missing
                raise _Retry(f"graph {key} left the cache during the read")
            return _Graph(key, {})
        graph = _Graph(key, _pairs(reply))
        if graph.fields:
            self._graphs[key] = graph
        return graph

    async def _load_run(
        self,
        tx: _Tx,
        state_key: str | None,
        run_key: str,
        graph_key: str | None,
        status_key: str | None,
        run_id: str,
    ) -> _Run | None:
        """``loadRun``: the run hash (whole, watched), the time, and the graph."""
        commands: list[_Command] = [("HGETALL", run_key), ("TIME",)]
        if graph_key is not None:
            commands.append(self._graph_read(graph_key))
        replies = await tx.read([run_key], *commands)
        view = tx.view(run_key)
        view.load(_pairs(replies[0]))
        if view.get(b"bp") is None:
            return None
        seconds, micros = (int(_num(x)) for x in replies[1])
        graph = None if graph_key is None else self._graph(graph_key, commands[2], replies[2])
        now = seconds * 1000 + micros // 1000
        return _Run(tx, self._queue, run_id, state_key, run_key, graph, status_key, now)

    # -------------------------------------------------------------------------- storeGraph
    async def store_graph(self, compiled: CompiledBlueprint) -> bool:
        """``storeGraph``: HSET every field unless the graph key exists (WATCH, EXISTS, MULTI)."""
        h = compiled.content_hash
        if h in self._stored:
            return False
        key = keys.graph_key(h)
        fields = graph_fields(compiled)
        if not fields or len(fields) % 2:
            code = ScriptCode.BAD_ARGUMENTS
        else:

            async def body(tx: _Tx) -> ScriptCode:
                (exists,) = await tx.read([key], ("EXISTS", key))
                if int(exists) == 1:
                    return ScriptCode.ALREADY_PRESENT
                tx.call("HSET", key, *fields)
                return ScriptCode.STORED

            code = await self._transact("storeGraph", body)
        if code not in (ScriptCode.STORED, ScriptCode.ALREADY_PRESENT):
            raise ScriptError(f"returned {code.name}", script="storeGraph", code=int(code))
        self._stored.add(h)
        return code == ScriptCode.STORED

    # ---------------------------------------------------------------------------- startRun
    async def start_run(
        self,
        run_id: str,
        compiled: CompiledBlueprint,
        context: Sequence[tuple[str, str]],
        options: RunOptions,
        *,
        adopt: bool = False,
    ) -> CommitResult:
        await self.store_graph(compiled)
        # The script's own arguments (start_run_call), so both stores start runs from the same values.
        _, argv = start_run_call(
            run_id, compiled, context, options, self.queue_name, self.queue_prefix, adopt=adopt
        )
        settings = _StartArgs(
            run_id=argv[0],
            blueprint_id=argv[1],
            graph_key=keys.graph_key(compiled.content_hash),
            queue=argv[2],
            channel=argv[3],
            ttl=argv[4],
            max_waves=argv[5],
            job_options=argv[6],
            adopt=argv[7] == "1",
            version=argv[8],
            context=list(zip(argv[9::2], argv[10::2], strict=True)),
        )
        result = await self._transact("startRun", lambda tx: self._start(tx, settings))
        if result[0] == ScriptCode.GRAPH_MISSING:
            # Stored graphs never expire, but the server may have been flushed since.
            self._stored.discard(compiled.content_hash)
            self._graphs.pop(settings.graph_key, None)
            await self.store_graph(compiled)
            result = await self._transact("startRun", lambda tx: self._start(tx, settings))
        return CommitResult(*result)

    async def _start(self, tx: _Tx, a: _StartArgs) -> tuple[ScriptCode, int, str | None]:
        state_key, run_key = keys.state_key(a.run_id), keys.run_key(a.run_id)
        graph_read = self._graph_read(a.graph_key)
        replies = await tx.read(
            [run_key, state_key],
            ("EXISTS", run_key),
            ("HGET", run_key, "st"),
            ("TIME",),
            ("HMGET", state_key, "blueprintId", "blueprintVersion", _TABLE_STATE_FIELD),
            graph_read,
        )
        graph = self._graph(a.graph_key, graph_read, replies[4])
        if int(replies[0]) == 1:
            return ScriptCode.ALREADY_PRESENT, 0, _opt_str(_opt_bytes(replies[1]))
        meta_text = graph.field("meta")
        if meta_text is None:
            return ScriptCode.GRAPH_MISSING, 0, None
        meta = _cjson_decode(meta_text)
        seconds, micros = (int(_num(x)) for x in replies[2])
        now = seconds * 1000 + micros // 1000
        state = tx.view(state_key)
        for name, value in zip(
            ("blueprintId", "blueprintVersion", _TABLE_STATE_FIELD), replies[3], strict=True
        ):
            state.absorb(_bytes(name), _opt_bytes(value))
        tx.view(run_key).load({})
        nodes = _num(_field(meta, "nodes"))
        run_fields: dict[str, Any] = {
            "bp": a.blueprint_id,
            "g": _lua_str(_field(meta, "hash")),
            "n": nodes,
            "nd": 0,
            "st": "running",
            "out": 0,
            "aw": 0,
            "mw": a.max_waves,
            "ttl": a.ttl,
            "q": a.queue,
            "ch": a.channel,
            "jo": a.job_options,
            "ts": now,
            "hx": _RUN_HASH_FILLER,
        }
        tx.hset(run_key, *(x for pair in run_fields.items() for x in pair))
        if not a.adopt and a.context:
            tx.hset(state_key, *(item for pair in a.context for item in pair))
        tx.hsetnx(state_key, "blueprintId", _cjson_string(a.blueprint_id))
        tx.hsetnx(state_key, "blueprintVersion", a.version)
        if nodes >= _TABLE_STATE_NODES:
            # tableState: HSETNX leaves a context key of that name alone (read with the state above)
            (present,) = await tx.hget(state_key, _TABLE_STATE_FIELD)
            if present is None:
                tx.hset(state_key, _TABLE_STATE_FIELD, _RUN_HASH_FILLER)
                tx.hdel(state_key, _TABLE_STATE_FIELD)
        run = _Run(tx, self._queue, a.run_id, state_key, run_key, graph, keys.status_key(a.run_id), now)
        run.hset("lu", run.now)
        tx.call("ZADD", keys.RUN_INDEX_KEY, run.now, a.run_id)
        run.log_run("run-started", None, "adopted" if a.adopt else "")
        start = _field(meta, "start")
        for s in start.array if isinstance(start, _LuaTable) else []:
            run.make_ready(int(s), 1)
        enqueued = 0
        if a.adopt:
            tx.hincrby(run_key, "out", len(run.ready))
        else:
            enqueued = await run.enqueue_ready()
        status = await run.settle_run()
        return ScriptCode.STORED, enqueued, status or run.status

    # ------------------------------------------------------------------------- completeNode
    async def complete_node(self, commit: NodeCommit) -> CommitResult:
        extra: dict[str, Any] = {}
        if commit.errors:
            extra["errors"] = commit.errors
        if commit.awaiting is not None:
            extra["awaiting"] = commit.awaiting
        if commit.sleep_ms:
            extra["sleepMs"] = commit.sleep_ms
        if commit.fetching:
            extra["fetching"] = 1
        if commit.dynamic is not None:
            extra["dynamic"] = commit.dynamic
        extra_text = _json(extra) if extra else ""
        result = await self._transact("completeNode", lambda tx: self._complete(tx, commit, extra_text))
        return CommitResult(*result)

    async def _complete(
        self, tx: _Tx, commit: NodeCommit, extra_text: str
    ) -> tuple[ScriptCode, int, str | None]:
        run = await self._load_run(
            tx,
            keys.state_key(commit.run_id),
            keys.run_key(commit.run_id),
            keys.graph_key(commit.graph_hash),
            keys.status_key(commit.run_id),
            commit.run_id,
        )
        if run is None:
            return ScriptCode.UNKNOWN_RUN, 0, None
        if run.status != "running":
            return ScriptCode.NOT_RUNNING, 0, run.status
        assert run.state_key is not None
        i = commit.index
        mode = commit.mode
        if run.node_status(i) != 1 or _num(run.get(f"it:{i}")) != commit.iteration:
            return ScriptCode.ALREADY_PRESENT, 0, run.status
        record = run.node_record(i)
        extra = _cjson_decode(extra_text) if extra_text else _LuaTable()
        task = _Task(commit.attempt, commit.started_at, commit.error)

        # context writes (the node's own, its output and the <id> alias)
        sets: list[str] = []
        dels: list[str] = []
        for name, value in commit.writes:
            if value is None or value == "":
                dels.append(name)
            else:
                sets += [name, value]
        if dels:
            tx.hdel(run.state_key, *dels)
        if sets:
            tx.hset(run.state_key, *sets)
        tx.hdel(run.run_key, f"rs:{i}")
        run.hset("lu", run.now)

        if mode == "sleep":
            it = tx.hincrby(run.run_key, f"it:{i}", 1)
            run.hset(f"rs:{i}", '{"sleep":true}')
            sleep = _tonumber(_field(extra, "sleepMs"))
            await run.enqueue_node(i, it, max(1, math.floor(sleep or 0)))
            run.track_node(i, "node-sleeping", task, None, None)
            return ScriptCode.STORED, 0, run.status

        if mode == "await":
            run.set_node_status(i, 6)
            tx.hincrby(run.run_key, "out", -1)
            tx.hincrby(run.run_key, "aw", 1)
            ids_text, details_text = await tx.hget(run.state_key, "_awaitingNodeIds", "_awaitingDetails")
            ids = _cjson_decode(ids_text or b"[]")
            ids.array.append(record.id)
            details: Any = _cjson_decode(details_text) if details_text is not None else _NIL
            if not _truthy(details):
                details = _LuaTable()
            awaiting = _field(extra, "awaiting")
            details.set(
                _lua_str(record.id), awaiting if _truthy(awaiting) else _table(reason="external_event")
            )
            tx.hset(
                run.state_key,
                "_awaitingNodeIds",
                _cjson_encode(ids),
                "_awaitingDetails",
                _cjson_encode(details),
            )
            run.track_node(i, "node-awaiting", task, None, None)
            status = await run.settle_run()
            return ScriptCode.STORED, 0, status or run.status

        # inputs handed to successors; a late arrival at a node that already ran changes nothing
        for target, name, value, transformed in commit.inputs:
            t = int(target)
            target_record = run.node_record(t)
            if run.node_status(t) == 0 or target_record.lc or t == record.ls:
                tx.hset(run.state_key, name, value)
                if transformed:
                    run.hset(f"t:{t}", 1)

        errors = _field(extra, "errors")
        if _truthy(errors):
            for e in errors.array if isinstance(errors, _LuaTable) else []:
                run.record_error(_field(e, "nodeId"), _field(e, "message"))

        workers: list[int] = []
        if mode == "fallback":
            run.track_node(i, "node-fallback", task, task.err, "failed")
            run.set_node_status(i, 3)
            w = _num(run.get(f"w:{i}")) + 1
            run.hset(f"ff:{record.fb}", i)
            run.propagate([(record.fb, i, True)], w)
        else:
            dyn = _field(extra, "dynamic")
            if _truthy(dyn):
                workers = self._add_dynamic(run, i, dyn)
            taken = None if commit.taken is None else {int(e) for e in commit.taken}
            run.track_node(i, "node-completed", task, None, "ok")
            run.complete_node_state(i, taken)
            if workers:
                w = _num(run.get(f"w:{i}")) + 1
                run.propagate([(t, i, True) for t in workers], w)
        tx.hincrby(run.run_key, "out", -1)
        run.fetching = _field(extra, "fetching") == 1
        enqueued = await run.enqueue_ready()
        status = await run.settle_run()
        return ScriptCode.STORED, enqueued, status or run.status

    @staticmethod
    def _add_dynamic(run: _Run, i: int, dyn: Any) -> list[int]:
        """The nodes a batch scatter added (``completeNode-11.lua``, ``extra.dynamic``)."""
        node_list = _field(dyn, "workers")
        if not isinstance(node_list, _LuaTable):
            raise ScriptError("dynamic.workers must be a list", script="completeNode")
        first = run.nstatic + run.ndynamic
        count = len(node_list.array)
        cont = _field(dyn, "continuation")
        has_cont = _truthy(cont)
        total = count + (1 if has_cont else 0)
        gather_value = _tonumber(_field(dyn, "gather"))
        gather = -1 if gather_value is None else gather_value
        worker_ids = [_lua_number(first + k) for k in range(count)]
        targets: list[str] = []
        if gather >= 0:
            targets.append(_lua_number(gather))
        if has_cont:
            targets.append(_lua_number(first + count))
        workers: list[int] = []
        for k in range(count):
            node = node_list.array[k]
            run.hset(
                f"d:{first + k}",
                '{"id":'
                + _cjson_encode(_field_index(node, 1))
                + ',"preds":['
                + _lua_number(i)
                + '],"targets":['
                + ",".join(targets)
                + '],"def":'
                + _lua_str(_field_index(node, 2))
                + "}",
            )
            run.hset(f"dx:{_lua_str(_field_index(node, 1))}", _lua_number(first + k))
            workers.append(first + k)
        if has_cont:
            cont_preds = ",".join(worker_ids) if count > 0 else _lua_number(i)
            run.hset(
                f"d:{first + count}",
                '{"id":'
                + _cjson_encode(_field_index(cont, 1))
                + ',"preds":['
                + cont_preds
                + '],"targets":['
                + (_lua_number(gather) if gather >= 0 else "")
                + '],"def":'
                + _lua_str(_field_index(cont, 2))
                + "}",
            )
            run.hset(f"dx:{_lua_str(_field_index(cont, 1))}", _lua_number(first + count))
        run.tx.hincrby(run.run_key, "nd", total)
        run.ndynamic += total
        if gather >= 0:
            for k in range(total):
                run.add_to_set(f"x:{_lua_number(gather)}", first + k)
        return workers

    # ----------------------------------------------------------------------------- failNode
    async def fail_node(
        self,
        run_id: str,
        graph_hash: str,
        index: int,
        iteration: int,
        message: str,
        *,
        attempt: int = 0,
        started_at: int = 0,
        detail: str = "",
    ) -> CommitResult:
        async def body(tx: _Tx) -> tuple[ScriptCode, int, str | None]:
            run = await self._load_run(
                tx,
                keys.state_key(run_id),
                keys.run_key(run_id),
                keys.graph_key(graph_hash),
                keys.status_key(run_id),
                run_id,
            )
            if run is None:
                return ScriptCode.UNKNOWN_RUN, 0, None
            if run.status != "running":
                return ScriptCode.NOT_RUNNING, 0, run.status
            i = index
            if run.node_status(i) != 1 or _num(run.get(f"it:{i}")) != iteration:
                return ScriptCode.ALREADY_PRESENT, 0, run.status
            run.set_node_status(i, 5)
            tx.hdel(run.run_key, f"rs:{i}")
            run.hset("lu", run.now)
            tx.hincrby(run.run_key, "out", -1)
            run.record_error(run.node_record(i).id, message)
            run.track_node(i, "node-failed", _Task(attempt, started_at), detail or message, "failed")
            status = await run.settle_run()
            return ScriptCode.STORED, 0, status or run.status

        return CommitResult(*await self._transact("failNode", body))

    # ---------------------------------------------------------------------------- cancelRun
    async def cancel_run(self, run_id: str, reason: str) -> CommitResult:
        async def body(tx: _Tx) -> tuple[ScriptCode, int, str | None]:
            run = await self._load_run(
                tx, keys.state_key(run_id), keys.run_key(run_id), None, keys.status_key(run_id), run_id
            )
            if run is None:
                return ScriptCode.UNKNOWN_RUN, 0, None
            if run.status not in ("running", "awaiting"):
                return ScriptCode.ALREADY_PRESENT, 0, run.status
            await run.publish_status("cancelled", reason)
            tx.call("PUBLISH", keys.CANCEL_CHANNEL, run.id)
            return ScriptCode.STORED, 0, "cancelled"

        return CommitResult(*await self._transact("cancelRun", body))

    # ---------------------------------------------------------------------------- resumeNode
    async def resume_node(
        self, run_id: str, graph_hash: str, node_id: str | None, payload: dict[str, Any]
    ) -> tuple[ScriptCode, str | None, str | None]:
        payload_text = _json(payload)

        async def body(tx: _Tx) -> tuple[ScriptCode, str | None, str | None]:
            state_key = keys.state_key(run_id)
            run = await self._load_run(
                tx,
                state_key,
                keys.run_key(run_id),
                keys.graph_key(graph_hash),
                keys.status_key(run_id),
                run_id,
            )
            if run is None:
                return ScriptCode.UNKNOWN_RUN, None, None
            if run.status not in ("running", "awaiting"):
                return ScriptCode.NOT_RUNNING, None, None
            assert run.graph is not None and run.status_key is not None
            ids_text, details_text = await tx.hget(state_key, "_awaitingNodeIds", "_awaitingDetails")
            ids = _cjson_decode(ids_text or b"[]")
            entries: list[Any] = ids.array if isinstance(ids, _LuaTable) else []
            wanted: Any = node_id or ""
            if wanted == "":
                wanted = entries[0] if entries else _NIL
            position = None
            for k, entry in enumerate(entries):
                if entry == wanted and type(entry) is type(wanted):
                    position = k
            index = run.graph.field(f"ix:{_lua_str(wanted)}") if _truthy(wanted) else None
            if index is None and _truthy(wanted):
                (index,) = await tx.hget(run.run_key, f"dx:{_lua_str(wanted)}")
            shown = _lua_str(wanted) if _truthy(wanted) else None
            if position is None or index is None:
                return ScriptCode.NOT_AWAITING, shown, None
            i = int(_num(index))
            if run.node_status(i) != 6:
                return ScriptCode.NOT_AWAITING, shown, None
            del entries[position]
            if not entries:
                tx.hdel(state_key, "_awaitingNodeIds", "_awaitingDetails")
            else:
                details: Any = _cjson_decode(details_text) if details_text is not None else _NIL
                if not _truthy(details):
                    details = _LuaTable()
                details.set(_lua_str(wanted), _NIL)
                tx.hset(
                    state_key,
                    "_awaitingNodeIds",
                    _cjson_encode(ids),
                    "_awaitingDetails",
                    _cjson_encode(details),
                )
            run.set_node_status(i, 1)
            it = tx.hincrby(run.run_key, f"it:{i}", 1)
            run.hset(f"rs:{i}", payload_text, "st", "running", "lu", run.now)
            tx.hincrby(run.run_key, "aw", -1)
            tx.hincrby(run.run_key, "out", 1)
            tx.call("DEL", run.status_key)
            job_id = await run.enqueue_node(i, it, 0)
            run.log_run("node-resumed", shown, "")
            return ScriptCode.STORED, shown, job_id

        return await self._transact("resumeNode", body)

    # ---------------------------------------------------------------------------- readyNodes
    async def ready_nodes(self, run_id: str, graph_hash: str) -> tuple[ScriptCode, list[ReadyNode]]:
        async def body(tx: _Tx) -> tuple[ScriptCode, list[ReadyNode]]:
            run = await self._load_run(
                tx, None, keys.run_key(run_id), keys.graph_key(graph_hash), None, run_id
            )
            if run is None:
                return ScriptCode.UNKNOWN_RUN, []
            if run.status != "running":
                return ScriptCode.NOT_RUNNING, []
            q = run.q
            ready = [i for i in range(run.nstatic + run.ndynamic) if run.node_status(i) == 1]
            its = {i: _num(run.get(f"it:{i}")) for i in ready}
            job_ids = {i: run.job_id(i, its[i]) for i in ready}
            job_keys = [run.queue + job_ids[i] for i in ready]
            probes: list[_Command] = []
            for i, job_key in zip(ready, job_keys, strict=True):
                probes += [
                    ("ZSCORE", q.failed, job_ids[i]),
                    ("ZSCORE", q.completed, job_ids[i]),
                    ("HGET", job_key, "failedReason"),
                ]
            replies = await run.prefetch_jobs(job_keys, *probes)
            out: list[ReadyNode] = []
            for k, (i, job_key) in enumerate(zip(ready, job_keys, strict=True)):
                failed, completed, failed_reason = replies[3 * k : 3 * k + 3]
                job_id = job_ids[i]
                state = "queued"
                reason = ""
                if failed is not None:
                    state = "failed"
                    reason = _str(_bytes(failed_reason)) if failed_reason is not None else "the job failed"
                elif completed is not None:
                    tx.call("ZREM", q.completed, job_id)
                    # bullmq's log list of a job; keys.py has no helper for it.
                    tx.call("DEL", job_key, job_key + ":logs")
                    tx.exists[job_key] = False
                    await run.enqueue_node(i, its[i], 0)
                    state = "requeued"
                elif not tx.exists[job_key]:
                    await run.enqueue_node(i, its[i], 0)
                    state = "requeued"
                out.append(ReadyNode(i, _lua_str(run.node_record(i).id), int(its[i]), job_id, state, reason))
            return ScriptCode.STORED, out

        return await self._transact("readyNodes", body)

    # --------------------------------------------------------------------------- acquireLock
    async def acquire_lock(self, name: str, token: str, ttl_ms: int) -> bool:
        key = keys.lock_key(name)

        async def body(tx: _Tx) -> bool:
            (holder,) = await tx.read([key], ("GET", key))
            if holder is not None and _bytes(holder) != _bytes(token):
                return False
            tx.call("SET", key, token, "PX", int(ttl_ms))
            return True

        return await self._transact("acquireLock", body)


def _field_index(value: Any, position: int) -> Any:
    """``value[position]`` for a decoded list (nil otherwise)."""
    return value.index(position) if isinstance(value, _LuaTable) else _NIL


@dataclass(frozen=True, slots=True)
class _StartArgs:
    """The arguments of ``startRun-11.lua``."""

    run_id: str
    blueprint_id: str
    graph_key: str
    queue: str
    channel: str
    ttl: int
    max_waves: int
    job_options: str
    adopt: bool
    version: str
    context: list[tuple[str, str]]
