"""The blueprint registry: blueprints stored in Redis by id and version, so every API process and
every worker sees the same ones.

:meth:`BlueprintRegistry.register` validates a blueprint with the library's own checks
(:func:`~bullflow.blueprint.load_blueprint`, compilation, expression parsing), then stores it as
the next version of its id -- unless the same content is registered already, in which case that
version is returned -- and stores its compiled graph (``bullflow:graph:<contentHash>``), which is
what a worker loads to run a node of a run pinned to that version. Versions are integers counted
from 1 per id; the keys are in :mod:`bullflow.keys` (``registry_key``).
"""

from __future__ import annotations

import logging
import re
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import orjson
from redis.asyncio import Redis
from redis.exceptions import WatchError

from . import keys
from .blueprint import BUILTIN_NODE_TYPES, Blueprint, BlueprintSource, load_blueprint
from .compile import CompiledBlueprint, compile_blueprint
from .coordination import RedisCoordinationStore
from .exceptions import BlueprintError, BullflowError
from .lint import lint_blueprint

__all__ = [
    "BLUEPRINT_ID_PATTERN",
    "BlueprintNotFoundError",
    "BlueprintRegistry",
    "RegisteredBlueprint",
    "Registration",
]

logger = logging.getLogger(__name__)

#: Registered ids must be usable as one URL path segment (and ``runs`` is taken by the run routes).
BLUEPRINT_ID_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:@-]{0,199}$")
RESERVED_IDS = frozenset({"runs"})
_EXPRESSION_CODES = frozenset({"INVALID_CONDITION", "INVALID_TRANSFORM", "INVALID_LOOP_CONDITION"})
_MAX_ATTEMPTS = 20


class BlueprintNotFoundError(BullflowError, LookupError):
    """No registered blueprint has this id (or this version)."""

    def __init__(self, blueprint_id: str, version: int | None = None) -> None:
        self.blueprint_id = blueprint_id
        self.version = version
        which = f"version {version} of blueprint" if version is not None else "blueprint"
        super().__init__(f"{which} {blueprint_id!r} is not registered")


@dataclass(frozen=True, slots=True)
class RegisteredBlueprint:
    """One stored version: the blueprint, its content hash and when it was registered (ms)."""

    id: str
    version: int
    content_hash: str
    registered_at: int
    blueprint: Blueprint


@dataclass(frozen=True, slots=True)
class Registration:
    """What :meth:`BlueprintRegistry.register` did: the version (new, or the existing one with
    the same content), whether it was new, the ``uses`` keys of the blueprint that are not
    built in, and lint warnings (orphan nodes ...) that do not stop a run."""

    id: str
    version: int
    content_hash: str
    created: bool
    uses: tuple[str, ...]
    warnings: tuple[str, ...]


class BlueprintRegistry:
    """Blueprints by id and version in Redis (``redis`` is a ``redis.asyncio.Redis`` with bytes
    replies). Compiled versions are cached in this process by content hash."""

    def __init__(self, redis: Redis, *, cache_size: int = 256) -> None:
        self.redis = redis
        self._store = RedisCoordinationStore(redis)
        self._compiled: OrderedDict[str, CompiledBlueprint] = OrderedDict()
        self._cache_size = cache_size

    # ------------------------------------------------------------------------------ register
    @staticmethod
    def validate(source: BlueprintSource) -> tuple[CompiledBlueprint, tuple[str, ...]]:
        """The compiled blueprint and its lint warnings; raises :class:`BlueprintError` (with the
        JSON path of the problem) for anything that would stop it from running as written."""
        blueprint = load_blueprint(source)
        if not BLUEPRINT_ID_PATTERN.match(blueprint.id) or blueprint.id in RESERVED_IDS:
            raise BlueprintError(
                "a registered blueprint id is 1-200 letters, digits and '_.:@-' (not starting with "
                f"'.', ':', '@' or '-', and not {', '.join(sorted(RESERVED_IDS))}); got {blueprint.id!r}",
                "id",
                blueprint_id=blueprint.id,
            )
        compiled = compile_blueprint(blueprint)
        uses = {node.uses for node in blueprint.nodes}
        warnings: list[str] = []
        for issue in lint_blueprint(blueprint, uses | BUILTIN_NODE_TYPES).issues:
            if issue.code in _EXPRESSION_CODES:
                raise BlueprintError(issue.message, issue.path or "", blueprint_id=blueprint.id)
            warnings.append(f"{issue.code}: {issue.message}")
        return compiled, tuple(warnings)

    async def register(self, source: BlueprintSource) -> Registration:
        """Validate and store a blueprint: a new version, or the existing version with the same
        content. Safe against concurrent registrations from other processes."""
        compiled, warnings = self.validate(source)
        blueprint = compiled.blueprint
        content_hash = compiled.content_hash
        await self._store.store_graph(compiled)  # every worker can load it from now on
        key = keys.registry_key(blueprint.id)
        text = orjson.dumps(blueprint.to_dict())
        created = False
        version = 0
        for _ in range(_MAX_ATTEMPTS):
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    existing, latest = await cast("Any", pipe.hmget(key, [f"h:{content_hash}", "latest"]))
                    if existing is not None:
                        version = int(existing)
                        break
                    version = int(latest or 0) + 1
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.hset(
                        key,
                        mapping={
                            "latest": version,
                            f"v:{version}": content_hash,
                            f"h:{content_hash}": version,
                            f"t:{version}": _now_ms(),
                            f"bp:{version}": text,
                        },
                    )
                    pipe.hset(keys.REGISTRY_INDEX, blueprint.id, str(version))
                    await pipe.execute()
                    created = True
                    break
                except WatchError:
                    continue
        else:  # pragma: no cover - needs _MAX_ATTEMPTS concurrent writers of one id
            raise BullflowError(f"blueprint {blueprint.id!r}: too many concurrent registrations; try again")
        self._remember(compiled)
        if created:
            logger.info("registered blueprint %r version %d (%s)", blueprint.id, version, content_hash[:12])
        uses = tuple(sorted({n.uses for n in blueprint.nodes} - BUILTIN_NODE_TYPES))
        return Registration(blueprint.id, version, content_hash, created, uses, warnings)

    # ---------------------------------------------------------------------------------- read
    async def latest(self) -> list[RegisteredBlueprint]:
        """The newest version of every registered blueprint, by id (two round trips)."""
        index: Mapping[bytes, bytes] = await cast("Any", self.redis.hgetall(keys.REGISTRY_INDEX))
        ids = sorted(k.decode() for k in index)
        pipe = self.redis.pipeline(transaction=False)
        for blueprint_id in ids:
            version = int(index[blueprint_id.encode()])
            pipe.hmget(keys.registry_key(blueprint_id), [f"v:{version}", f"t:{version}", f"bp:{version}"])
        found = []
        for blueprint_id, (content_hash, registered, text) in zip(ids, await pipe.execute(), strict=True):
            if content_hash is None or text is None:  # pragma: no cover - removed by hand meanwhile
                continue
            found.append(
                RegisteredBlueprint(
                    id=blueprint_id,
                    version=int(index[blueprint_id.encode()]),
                    content_hash=content_hash.decode(),
                    registered_at=int(registered or 0),
                    blueprint=load_blueprint(text),
                )
            )
        return found

    async def versions(self, blueprint_id: str) -> list[int]:
        latest = await cast("Any", self.redis.hget(keys.registry_key(blueprint_id), "latest"))
        if latest is None:
            raise BlueprintNotFoundError(blueprint_id)
        return list(range(1, int(latest) + 1))

    async def get(self, blueprint_id: str, version: int | None = None) -> RegisteredBlueprint:
        """A registered version (the newest when ``version`` is None)."""
        key = keys.registry_key(blueprint_id)
        if version is None:
            latest = await cast("Any", self.redis.hget(key, "latest"))
            if latest is None:
                raise BlueprintNotFoundError(blueprint_id)
            version = int(latest)
        content_hash, registered, text = await cast(
            "Any", self.redis.hmget(key, [f"v:{version}", f"t:{version}", f"bp:{version}"])
        )
        if content_hash is None or text is None:
            raise BlueprintNotFoundError(blueprint_id, version)
        return RegisteredBlueprint(
            id=blueprint_id,
            version=version,
            content_hash=content_hash.decode(),
            registered_at=int(registered or 0),
            blueprint=load_blueprint(text),
        )

    async def compiled(
        self, blueprint_id: str, version: int | None = None
    ) -> tuple[RegisteredBlueprint, CompiledBlueprint]:
        """A registered version and its compiled form (cached by content hash)."""
        entry = await self.get(blueprint_id, version)
        hit = self._compiled.get(entry.content_hash)
        if hit is None:
            hit = compile_blueprint(entry.blueprint)
            if hit.content_hash != entry.content_hash:
                raise BullflowError(
                    f"blueprint {blueprint_id!r} version {entry.version}: the stored JSON does not match "
                    f"its content hash {entry.content_hash[:12]}"
                )
            self._remember(hit)
            await self._store.store_graph(hit)  # in case the graph key was removed
        else:
            self._compiled.move_to_end(entry.content_hash)
        return entry, hit

    def _remember(self, compiled: CompiledBlueprint) -> None:
        self._compiled[compiled.content_hash] = compiled
        while len(self._compiled) > self._cache_size:
            self._compiled.popitem(last=False)


def _now_ms() -> int:
    return int(time.time() * 1000)
