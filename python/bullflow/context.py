"""The context a node sees: the run's state plus the node's own pending writes.

A node's writes are buffered and committed only when the node succeeds, so a node that fails,
times out or is retried never leaves half its writes in the run state. Reads see the node's own
writes first (read-your-writes).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .expressions import Expression

__all__ = ["DELETED", "NodeContextView"]


class _Deleted:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<deleted>"


DELETED: Any = _Deleted()


class NodeContextView:
    """Async key/value access to the run context (Flowcraft's ``IAsyncContext``)."""

    __slots__ = ("_data", "_writes")

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data
        self._writes: dict[str, Any] = {}

    async def get(self, key: str, default: Any = None) -> Any:
        writes = self._writes
        if key in writes:
            value = writes[key]
            return default if value is DELETED else value
        return self._data.get(key, default)

    async def set(self, key: str, value: Any) -> None:
        self._writes[key] = value

    async def has(self, key: str) -> bool:
        if key in self._writes:
            return self._writes[key] is not DELETED
        return key in self._data

    async def delete(self, key: str) -> bool:
        existed = await self.has(key)
        self._writes[key] = DELETED
        return existed

    async def to_dict(self) -> dict[str, Any]:
        """A copy of the whole context as this node sees it."""
        return dict(self._items())

    def _items(self) -> Iterator[tuple[str, Any]]:
        writes = self._writes
        for key, value in self._data.items():
            if key not in writes:
                yield key, value
        for key, value in writes.items():
            if value is not DELETED:
                yield key, value

    async def evaluate(self, expression: Expression) -> Any:
        """Evaluate an expression against the context as this node sees it."""
        return expression.evaluate(self.as_mapping())

    def as_mapping(self) -> Mapping[str, Any]:
        """A read-only view of the context as this node sees it (no copy when nothing was
        written). For expression scopes."""
        if not self._writes:
            return self._data
        return dict(self._items())

    # ---- runtime side -------------------------------------------------------------------------
    def pending_writes(self) -> Mapping[str, Any]:
        """Buffered writes in order; deletions are the ``DELETED`` marker."""
        return self._writes

    def discard(self) -> None:
        self._writes = {}
