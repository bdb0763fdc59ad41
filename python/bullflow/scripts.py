"""The Lua coordination scripts (``bullflow/lua/``): loaded once, run with EVALSHA (loaded again
on NOSCRIPT); return codes map to :class:`ScriptCode` and errors to :class:`ScriptError`.

An entry script may pull in shared functions with a line ``-- @include "<name>"``: the text of
``lua/includes/<name>.lua`` (one ``local function <name>`` each) replaces the line, once per
script, before the script is hashed and loaded."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from functools import cache
from importlib import resources
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from .exceptions import ScriptError
from .keys import graph_key

__all__ = ["LuaScript", "ScriptCode", "ScriptRunner", "load_scripts"]

logger = logging.getLogger(__name__)

_FILE_NAME = re.compile(r"^([a-z][A-Za-z0-9]*)-(\d+)\.lua$")
_HEADER = re.compile(r"\A--\[\[(.*?)\]\]", re.S)
_KEY_LINE = re.compile(r"^\s*KEYS\[(\d+)\]", re.M)
_INCLUDE = re.compile(r'^-- @include "([A-Za-z0-9]+)"[ \t]*$', re.M)


class ScriptCode(IntEnum):
    """Domain return codes of the scripts (the table in ``lua/README.md``)."""

    STORED = 1
    ALREADY_PRESENT = 0
    BAD_ARGUMENTS = -1
    NOT_RUNNING = -2
    GRAPH_MISSING = -4
    UNKNOWN_RUN = -5
    NOT_AWAITING = -6
    USE_BULLMQ = -7
    CONTINUE = 2
    LEASE_HELD = -8
    NOTHING_DUE = -9
    FENCED = -10
    WRONG_STATUS = -11
    PAUSING = -12


@dataclass(frozen=True, slots=True)
class LuaScript:
    name: str
    num_keys: int
    source: str
    sha: str

    @classmethod
    def parse(cls, file_name: str, source: str, includes: Mapping[str, str] | None = None) -> LuaScript:
        """A script from its file name (``<verbNoun>-<N>.lua``) and text; the header's ``KEYS[i]``
        lines must be exactly ``KEYS[1]`` .. ``KEYS[N]``. ``-- @include`` lines are replaced by
        the named entries of ``includes``."""
        match = _FILE_NAME.match(file_name)
        if match is None:
            raise ScriptError("the file name must be <lowerCamelVerbNoun>-<numKeys>.lua", script=file_name)
        header = _HEADER.match(source)
        if header is None:
            raise ScriptError(
                "the script must open with a --[[ ... ]] header (lua/README.md)", script=file_name
            )
        num_keys = int(match.group(2))
        declared = [int(k) for k in _KEY_LINE.findall(header.group(1))]
        if declared != list(range(1, num_keys + 1)):
            raise ScriptError(
                f"the header declares KEYS {declared}, the file name says {num_keys}", script=file_name
            )
        source = _expand_includes(file_name, source, includes or {})
        return cls(match.group(1), num_keys, source, hashlib.sha1(source.encode()).hexdigest())


def _expand_includes(file_name: str, source: str, includes: Mapping[str, str]) -> str:
    seen: set[str] = set()

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in seen:
            return ""
        seen.add(name)
        text = includes.get(name)
        if text is None:
            raise ScriptError(f"includes {name!r}, which is not in lua/includes/", script=file_name)
        return _INCLUDE.sub(replace, text.rstrip("\n"))

    return _INCLUDE.sub(replace, source)


@cache
def load_scripts() -> dict[str, LuaScript]:
    """Every entry script shipped in ``bullflow/lua`` by name."""
    root = resources.files("bullflow").joinpath("lua")
    includes = {
        entry.name.removesuffix(".lua"): entry.read_text(encoding="utf-8")
        for entry in root.joinpath("includes").iterdir()
        if entry.name.endswith(".lua") and entry.is_file()
    }
    scripts: dict[str, LuaScript] = {}
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".lua") and entry.is_file():
            script = LuaScript.parse(entry.name, entry.read_text(encoding="utf-8"), includes)
            scripts[script.name] = script
    return scripts


class ScriptRunner:
    """Runs the scripts on one redis-py asyncio client."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.scripts = load_scripts()

    async def run(self, name: str, keys: Sequence[str | bytes], args: Sequence[Any]) -> Any:
        """EVALSHA the script ``name``; on NOSCRIPT load it and try once more."""
        script = self.scripts[name]
        if len(keys) != script.num_keys:
            raise ScriptError(f"expects {script.num_keys} keys, got {len(keys)}", script=name)
        try:
            return await self._evalsha(script, keys, args)
        except NoScriptError:
            logger.info("loading Lua script %s into Redis", name)
            await cast("Awaitable[Any]", self.redis.script_load(script.source))
            return await self._evalsha(script, keys, args)

    def _evalsha(self, script: LuaScript, keys: Sequence[str | bytes], args: Sequence[Any]) -> Awaitable[Any]:
        return cast("Awaitable[Any]", self.redis.evalsha(script.sha, script.num_keys, *keys, *args))

    async def store_graph(self, graph: Any) -> bool:
        """Store a compiled graph (``CompiledGraph``) under ``bullflow:graph:<contentHash>`` once.
        True when this call stored it, False when it was there already."""
        code = await self.run("storeGraph", [graph_key(graph.content_hash)], graph.lua_encoding())
        if code == ScriptCode.STORED:
            return True
        if code == ScriptCode.ALREADY_PRESENT:
            return False
        raise ScriptError(f"returned {_code_name(code)}", script="storeGraph", code=int(code))


def _code_name(code: Any) -> str:
    try:
        return f"{ScriptCode(int(code)).name} ({int(code)})"
    except (TypeError, ValueError):
        return repr(code)
