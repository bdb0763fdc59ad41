"""A node's view of a distributed run's state hash (``workflow:state:<runId>``), encoded exactly as
Flowcraft's ``RedisContext`` does (each field ``JSON.stringify`` of its value).

The view never reads the whole hash per job: the worker prefetches the fields a node is known to
need (its input, the keys its conditions read) in the same round trip as the run's coordination
fields, and anything else is read on first use (``HMGET``/``HGET``). Writes are buffered like the
in-process view and committed by the ``completeNode`` script only if the node succeeds.

Edge conditions, transforms and input resolution are synchronous functions of a mapping;
:func:`evaluate_lazily` runs one against a :class:`RecordingScope` that notes the fields it
needed but had not loaded, loads them in one ``HMGET`` and runs it again, so expressions see the
same values they would in-process while reading only what they use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from redis.asyncio import Redis

from ._impl import decode_hash, decode_hmget, decode_value
from .context import DELETED, NodeContextView
from .exceptions import CodecError
from .keys import state_key

if TYPE_CHECKING:
    from .expressions import Expression

__all__ = ["RecordingScope", "RedisContext", "evaluate_lazily"]

T = TypeVar("T")

_MAX_ROUNDS = 16


class RedisContext(NodeContextView):
    """Async access to ``workflow:state:<runId>`` for one node execution."""

    __slots__ = ("_absent", "_key", "_redis", "run_id")

    def __init__(self, redis: Redis, run_id: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(data if data is not None else {})
        self._redis = redis
        self.run_id = run_id
        self._key = state_key(run_id)
        self._absent: set[str] = set()

    @property
    def loaded(self) -> Mapping[str, Any]:
        """The fields read so far (decoded)."""
        return self._data

    def is_known(self, key: str) -> bool:
        """Whether ``key`` was read already (present or absent) or written by this node."""
        return key in self._writes or key in self._data or key in self._absent

    async def load(self, keys: Iterable[str]) -> None:
        """Read the fields not read yet, in one ``HMGET``."""
        wanted = [k for k in dict.fromkeys(keys) if not self.is_known(k)]
        if not wanted:
            return
        values = await cast("Any", self._redis.hmget(self._key, wanted))
        self.absorb(wanted, values)

    def absorb(self, keys: list[str], values: list[bytes | None]) -> None:
        """Take an ``HMGET`` reply of ``keys`` (e.g. from the worker's prefetch pipeline)."""
        try:
            decoded = decode_hmget(keys, values)
        except CodecError as err:
            raise CodecError(f"corrupt state field in {self._key}: {err}", key=err.key) from err
        self._data.update(decoded)
        for key in keys:
            if key not in decoded:
                self._absent.add(key)

    async def get(self, key: str, default: Any = None) -> Any:
        if key in self._writes:
            value = self._writes[key]
            return default if value is DELETED else value
        if key not in self._data and key not in self._absent:
            await self.load([key])
        return self._data.get(key, default)

    async def has(self, key: str) -> bool:
        if key in self._writes:
            return self._writes[key] is not DELETED
        if key not in self._data and key not in self._absent:
            await self.load([key])
        return key in self._data

    async def to_dict(self) -> dict[str, Any]:
        """The whole context as this node sees it (one ``HGETALL``: only when a node asks)."""
        raw = await cast("Any", self._redis.hgetall(self._key))
        try:
            self._data = decode_hash(raw)
        except CodecError as err:
            raise CodecError(f"corrupt state field in {self._key}: {err}", key=err.key) from err
        self._absent.clear()
        return dict(self._items())

    async def evaluate(self, expression: Expression) -> Any:
        return await evaluate_lazily(self, expression.evaluate)


class RecordingScope(Mapping[str, Any]):
    """The context as loaded so far (plus the node's writes); a lookup of a field that was not read
    yet counts as absent and is remembered in :attr:`misses`."""

    __slots__ = ("_view", "misses")

    def __init__(self, view: RedisContext) -> None:
        self._view = view
        self.misses: list[str] = []

    def _probe(self, key: str) -> bool:
        view = self._view
        writes = view._writes
        if key in writes:
            return writes[key] is not DELETED
        if key in view._data:
            return True
        if key not in view._absent and isinstance(key, str):
            self.misses.append(key)
        return False

    def __getitem__(self, key: str) -> Any:
        if not self._probe(key):
            raise KeyError(key)
        writes = self._view._writes
        return writes[key] if key in writes else self._view._data[key]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._probe(key)

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if self._probe(key) else default

    def __iter__(self) -> Iterator[str]:
        return iter(dict(self._view._items()))

    def __len__(self) -> int:
        return sum(1 for _ in self._view._items())


async def evaluate_lazily(view: RedisContext, function: Callable[[Mapping[str, Any]], T]) -> T:
    """``function(scope)`` where the scope reads through to Redis: fields it looks at that were not
    loaded are fetched (one ``HMGET`` per round) and the function runs again, until it needs
    nothing new."""
    for _ in range(_MAX_ROUNDS):
        scope = RecordingScope(view)
        value = function(scope)
        if not scope.misses:
            return value
        await view.load(scope.misses)
    return function(RecordingScope(view))


def decode_field(key: str, raw: bytes | str | None) -> Any:
    """One state field's value (``None`` when absent)."""
    if raw is None:
        return None
    return decode_value(raw, key)
