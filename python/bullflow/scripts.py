"""The Lua coordination scripts (``bullflow/lua/``): run as the functions of one function library
(FCALL, Redis 7+) or, on a server without functions, as scripts (EVALSHA); loaded when the
server lacks them. Return codes map to :class:`ScriptCode` and errors to :class:`ScriptError`.

An entry script may pull in shared functions with a line ``-- @include "<name>"``: the text of
``lua/includes/<name>.lua`` (one ``local function <name>`` each) replaces the line, once per
script, before the script is hashed and loaded."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from functools import cache
from importlib import resources
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import NoPermissionError, NoScriptError, ResponseError

from .exceptions import ScriptError
from .keys import FUNCTION_LIBRARY_PREFIX, graph_key

__all__ = [
    "LuaLibrary",
    "LuaScript",
    "ScriptCalls",
    "ScriptCode",
    "ScriptRunner",
    "load_library",
    "load_scripts",
]

logger = logging.getLogger(__name__)

_FILE_NAME = re.compile(r"^([a-z][A-Za-z0-9]*)-(\d+)\.lua$")
_HEADER = re.compile(r"\A--\[\[(.*?)\]\]", re.S)
_KEY_LINE = re.compile(r"^\s*KEYS\[(\d+)\]", re.M)
_INCLUDE = re.compile(r'^-- @include "([A-Za-z0-9]+)"[ \t]*$', re.M)
_FUNCTION_NOT_FOUND = "Function not found"


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


def _expand_includes(
    file_name: str,
    source: str,
    includes: Mapping[str, str],
    seen: set[str] | None = None,
    hoisted: list[str] | None = None,
) -> str:
    """``source`` with each ``-- @include`` line replaced by the include's text (expanded the same
    way), or by nothing when ``seen`` has it already. With ``hoisted`` the texts are appended
    there instead, in order, and every include line is removed from ``source``."""
    seen = set() if seen is None else seen

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in seen:
            return ""
        seen.add(name)
        text = includes.get(name)
        if text is None:
            raise ScriptError(f"includes {name!r}, which is not in lua/includes/", script=file_name)
        expanded = _INCLUDE.sub(replace, text.rstrip("\n"))
        if hoisted is None:
            return expanded
        hoisted.append(expanded)
        return ""

    return _INCLUDE.sub(replace, source)


@dataclass(frozen=True, slots=True)
class LuaLibrary:
    """Every entry script as a function of one Redis function library (Redis 7+): the shared
    functions of ``lua/includes`` are defined once, when the library is loaded, instead of at
    every call of a script. ``name`` is ``bullflow_<hash>``, the hash of its text; ``functions``
    maps a script's name to its function's, ``<library name>_<script name>``."""

    name: str
    source: str
    functions: Mapping[str, str]


def _read_lua() -> tuple[dict[str, str], list[tuple[str, str]]]:
    root = resources.files("bullflow").joinpath("lua")
    includes = {
        entry.name.removesuffix(".lua"): entry.read_text(encoding="utf-8")
        for entry in root.joinpath("includes").iterdir()
        if entry.name.endswith(".lua") and entry.is_file()
    }
    entries = [
        (entry.name, entry.read_text(encoding="utf-8"))
        for entry in sorted(root.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".lua") and entry.is_file()
    ]
    return includes, entries


@cache
def load_scripts() -> dict[str, LuaScript]:
    """Every entry script shipped in ``bullflow/lua`` by name."""
    includes, entries = _read_lua()
    scripts: dict[str, LuaScript] = {}
    for file_name, source in entries:
        script = LuaScript.parse(file_name, source, includes)
        scripts[script.name] = script
    return scripts


# The globals the scripts use, as locals of the library: a function reads the globals through an
# empty table's __index (redis' protection of a library's globals), a local is one step. At load
# time only a restricted ``redis`` is there; the first call binds them all, from a function
# compiled before the locals exist (its names are still the globals).
_GLOBAL_NAMES = "redis, cjson, string, table, math, tonumber, tostring, type, ipairs, pairs, unpack, pcall"
_LIBRARY_GLOBALS = f"""local function globalsAtRunTime()
  return {_GLOBAL_NAMES}
end
local {_GLOBAL_NAMES} = redis
local bound = false
local function bindGlobals()
  {_GLOBAL_NAMES} = globalsAtRunTime()
  bound = true
end
"""


@cache
def load_library() -> LuaLibrary:
    """The entry scripts of ``bullflow/lua`` as one function library: each include's text once,
    in the order the scripts pull them in, then each script's own text as the body of a
    ``local function script_<name>(KEYS, ARGV)``, registered under its function name. A script
    runs the same either way: its includes take what varies per call as arguments, and the
    state they keep across calls (``numText``'s texts, ``graphRecord``'s node records,
    ``graphMeta``'s decoded metas: lua/README.md) holds for every call."""
    includes, entries = _read_lua()
    scripts = load_scripts()  # (checks every file: its name, header and includes)
    seen: set[str] = set()
    shared: list[str] = []
    bodies: list[str] = []
    names: list[str] = []
    for (file_name, source), name in zip(entries, scripts, strict=True):
        names.append(name)
        body = _expand_includes(file_name, source, includes, seen, shared).rstrip()
        bodies.append(f"local function script_{name}(KEYS, ARGV)\n{body}\nend\n")
    text = _LIBRARY_GLOBALS + "\n".join(shared) + "\n" + "\n".join(bodies)
    library = FUNCTION_LIBRARY_PREFIX + hashlib.sha1(text.encode()).hexdigest()[:16]
    functions = {name: f"{library}_{name}" for name in names}
    # allow-cross-slot-keys: what a script run by EVALSHA may do (a finishJobs group spans runs)
    registrations = "".join(
        f"redis.register_function{{function_name = '{functions[name]}', callback = function(keys, args)\n"
        f"  if not bound then bindGlobals() end\n  return script_{name}(keys, args)\n"
        f"end, flags = {{ 'allow-cross-slot-keys' }}}}\n"
        for name in names
    )
    return LuaLibrary(library, f"#!lua name={library}\n{text}\n{registrations}", functions)


class ScriptCalls:
    """How the scripts are called on one server, without I/O (:class:`ScriptRunner` does it on
    an asyncio client, the load test's users on a synchronous one): as functions of
    :func:`load_library` (FCALL) where the server has them (Redis 7+), else as scripts
    (EVALSHA); ``functions=False`` uses scripts only. A call the server cannot run yet -- it does
    not hold the library or script (a restart, FUNCTION FLUSH, SCRIPT FLUSH), it has no
    functions, or its ACL refuses FUNCTION LOAD -- ran nothing (:meth:`is_missing`): the caller
    sends :meth:`remedy`'s command, if any, and makes the call again."""

    def __init__(self, *, functions: bool = True) -> None:
        self.scripts = load_scripts()
        self.library = load_library()
        self.functions = functions

    def command(self, name: str, keys: Sequence[str | bytes], args: Sequence[Any]) -> tuple[Any, ...]:
        """The command that runs script ``name``: FCALL of its function or EVALSHA."""
        script = self.scripts[name]
        if len(keys) != script.num_keys:
            raise ScriptError(f"expects {script.num_keys} keys, got {len(keys)}", script=name)
        if self.functions:
            return ("FCALL", self.library.functions[name], script.num_keys, *keys, *args)
        return ("EVALSHA", script.sha, script.num_keys, *keys, *args)

    def queue(self, pipe: Any, name: str, keys: Sequence[str | bytes], args: Sequence[Any]) -> None:
        """Add the call of script ``name`` to a redis-py pipeline (its reply: see :meth:`is_missing`)."""
        pipe.execute_command(*self.command(name, keys, args))

    @staticmethod
    def is_missing(reply: Any) -> bool:
        """Whether a reply (or a raised error) says the server does not hold the function or
        script, or has no functions: nothing ran."""
        if isinstance(reply, NoScriptError):
            return True
        if not isinstance(reply, ResponseError):
            return False
        text = str(reply)
        # (a server without functions: "unknown command 'FCALL'", quoted `FCALL` before 6.2)
        return text.startswith(_FUNCTION_NOT_FOUND) or (
            text.startswith("unknown command") and "fcall" in text[:30].lower()
        )

    def remedy(self, name: str, missing: ResponseError) -> tuple[Any, ...] | None:
        """After a missing reply for script ``name``: the command that loads what the server
        lacks (SCRIPT LOAD or FUNCTION LOAD), or None when the calls turn to scripts (a server
        without functions); send it, then make the call again (its :meth:`command` anew)."""
        if isinstance(missing, NoScriptError):
            logger.info("loading Lua script %s into Redis", name)
            return ("SCRIPT", "LOAD", self.scripts[name].source)
        if not self.functions:
            raise missing
        if str(missing).startswith(_FUNCTION_NOT_FOUND):
            logger.info("loading Lua function library %s into Redis", self.library.name)
            return ("FUNCTION", "LOAD", "REPLACE", self.library.source)
        self.use_scripts(missing)
        return None

    def use_scripts(self, reason: ResponseError) -> None:
        """Turn to scripts when ``reason`` says the server has no functions or refuses to load
        them (an unknown command, NOPERM); any other error is raised."""
        if not isinstance(reason, NoPermissionError) and not str(reason).startswith("unknown"):
            raise reason
        if self.functions:
            logger.warning("Redis runs no function library here (%s): the Lua runs as scripts", reason)
        self.functions = False


class ScriptRunner(ScriptCalls):
    """Runs the scripts on one redis-py asyncio client (:class:`ScriptCalls`)."""

    def __init__(self, redis: Redis, *, functions: bool = True) -> None:
        super().__init__(functions=functions)
        self.redis = redis

    async def run(
        self,
        name: str,
        keys: Sequence[str | bytes],
        args: Sequence[Any],
        *,
        execute: Callable[..., Awaitable[Any]] | None = None,
    ) -> Any:
        """Run script ``name``; what the server does not hold yet is loaded and the call made
        again (at most twice: the library, then, on a server without functions, the script).
        ``execute`` sends the call's command (default: on the client; a caller may hold its own
        connection)."""
        send = execute or self._execute
        for _ in range(2):
            try:
                return await send(*self.command(name, keys, args))
            except ResponseError as error:
                if not self.is_missing(error):
                    raise
                await self.recover(name, error)
        return await send(*self.command(name, keys, args))

    def _execute(self, *command: Any) -> Awaitable[Any]:
        return cast("Awaitable[Any]", cast("Any", self.redis).execute_command(*command))

    async def recover(self, name: str, missing: ResponseError) -> None:
        """Send :meth:`remedy`'s command, if any, after a missing reply for script ``name``."""
        command = self.remedy(name, missing)
        if command is not None:
            try:
                await self._execute(*command)
            except ResponseError as refused:
                self.use_scripts(refused)

    async def load(self) -> None:
        """Make sure the server holds what the calls run: the function library, or when the
        calls run scripts every script it lacks."""
        if self.functions:
            try:
                listed = await self._execute("FUNCTION", "LIST", "LIBRARYNAME", self.library.name)
                if not listed:  # (the name is a pattern: the library's own matches only itself)
                    await self._execute("FUNCTION", "LOAD", "REPLACE", self.library.source)
            except ResponseError as error:
                self.use_scripts(error)
        if not self.functions:
            names = list(self.scripts)
            present = await cast(
                "Awaitable[Any]", self.redis.script_exists(*(self.scripts[n].sha for n in names))
            )
            for name, there in zip(names, present, strict=True):
                if not there:
                    await cast("Awaitable[Any]", self.redis.script_load(self.scripts[name].source))

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
