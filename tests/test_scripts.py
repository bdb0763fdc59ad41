"""The Lua script loader: file names, headers, the return-code table, the function library, and
recovery when the server lacks the library or a script or has no functions."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from redis.asyncio import Redis
from tests.redis_servers import start_redis_server

from bullflow import keys
from bullflow.blueprint import load_blueprint
from bullflow.compile import compile_blueprint
from bullflow.coordination import NodeCommit, RedisCoordinationStore, RunOptions
from bullflow.exceptions import ScriptError
from bullflow.scripts import LuaScript, ScriptCode, ScriptRunner, load_library, load_scripts
from bullflow.settings import RedisSettings

LUA = Path(__file__).resolve().parents[1] / "lua"


def test_every_script_loads_and_its_header_matches_its_name() -> None:
    files = sorted(p.name for p in LUA.glob("*.lua"))
    assert files, "no Lua scripts found"
    scripts = load_scripts()
    assert sorted(f"{s.name}-{s.num_keys}.lua" for s in scripts.values()) == files


def test_the_code_table_agrees_with_the_enum() -> None:
    table = (LUA / "README.md").read_text()
    rows = re.findall(r"^\|\s*(-?\d+)\s*\|\s*([A-Z_]+)\s*\|", table, re.M)
    assert {name: int(code) for code, name in rows} == {c.name: c.value for c in ScriptCode}


@pytest.mark.parametrize(
    ("name", "source", "problem"),
    [
        ("store_graph-1.lua", "--[[\n KEYS[1] k\n]]", "the file name must be"),
        ("storeGraph.lua", "--[[\n KEYS[1] k\n]]", "the file name must be"),
        ("storeGraph-1.lua", "return 1", "header"),
        ("storeGraph-2.lua", "--[[\n KEYS[1] k\n]]\nreturn 1", "declares KEYS [1], the file name says 2"),
        (
            "storeGraph-1.lua",
            "--[[\n KEYS[1] a\n KEYS[2] b\n]]",
            "declares KEYS [1, 2], the file name says 1",
        ),
    ],
)
def test_bad_scripts_are_refused(name: str, source: str, problem: str) -> None:
    with pytest.raises(ScriptError, match=re.escape(problem)):
        LuaScript.parse(name, source)


async def test_noscript_loads_the_script_again(redis_client: Redis, key_prefix: str) -> None:
    runner = ScriptRunner(redis_client, functions=False)
    await redis_client.script_flush()
    assert await runner.run("storeGraph", [f"{key_prefix}:g"], ["meta", "{}"]) == ScriptCode.STORED
    await redis_client.script_flush()
    assert await runner.run("storeGraph", [f"{key_prefix}:g"], ["meta", "{}"]) == ScriptCode.ALREADY_PRESENT


def test_the_library_holds_every_script_as_a_function_and_each_include_once() -> None:
    library = load_library()
    scripts = load_scripts()
    assert library.source.startswith(f"#!lua name={library.name}\n")
    assert re.fullmatch(re.escape(keys.FUNCTION_LIBRARY_PREFIX) + r"[0-9a-f]{16}", library.name)
    assert keys.FUNCTION_LIBRARY_PREFIX == "bullflow_"  # the wire contract (bullflow.keys)
    assert library.functions == {name: f"{library.name}_{name}" for name in scripts}
    for name in scripts:
        assert library.source.count(f"function_name = '{library.functions[name]}'") == 1
    for include in (LUA / "includes").glob("*.lua"):
        assert library.source.count(f"local function {include.stem}(") == 1, include.name
    assert "-- @include" not in library.source


async def test_a_flushed_library_is_loaded_again(redis_client: Redis, key_prefix: str) -> None:
    runner = ScriptRunner(redis_client)
    await redis_client.execute_command("FUNCTION", "FLUSH")
    assert await runner.run("storeGraph", [f"{key_prefix}:g"], ["meta", "{}"]) == ScriptCode.STORED
    listed = await redis_client.execute_command("FUNCTION", "LIST", "LIBRARYNAME", load_library().name)
    assert len(listed) == 1
    library = dict(zip(listed[0][::2], listed[0][1::2], strict=True))
    functions = [dict(zip(f[::2], f[1::2], strict=True)) for f in library[b"functions"]]
    assert sorted(f[b"name"].decode() for f in functions) == sorted(load_library().functions.values())
    # what a script run by EVALSHA may do: a finishJobs group touches the keys of several runs
    assert all(f[b"flags"] == [b"allow-cross-slot-keys"] for f in functions)
    await redis_client.execute_command("FUNCTION", "FLUSH")
    assert await runner.run("storeGraph", [f"{key_prefix}:g"], ["meta", "{}"]) == ScriptCode.ALREADY_PRESENT
    assert runner.functions, "a missing library is loaded again, not given up for scripts"


async def test_load_makes_sure_the_server_holds_the_library_or_the_scripts(redis_client: Redis) -> None:
    name = load_library().name
    await redis_client.execute_command("FUNCTION", "FLUSH")
    await ScriptRunner(redis_client).load()
    assert len(await redis_client.execute_command("FUNCTION", "LIST", "LIBRARYNAME", name)) == 1
    await ScriptRunner(redis_client).load()  # there already: nothing to do
    await redis_client.script_flush()
    await ScriptRunner(redis_client, functions=False).load()
    shas = [s.sha for s in load_scripts().values()]
    assert await redis_client.script_exists(*shas) == [True] * len(shas)


async def _run_one_node(store: RedisCoordinationStore, run_id: str) -> str:
    compiled = compile_blueprint(
        load_blueprint({"id": "one", "nodes": [{"id": "A", "uses": "x"}], "edges": []})
    )
    started = await store.start_run(run_id, compiled, [], RunOptions())
    assert started.code == ScriptCode.STORED and started.enqueued == 1
    done = await store.complete_node(NodeCommit(run_id, compiled.graph.content_hash, 0, 0))
    assert done.code == ScriptCode.STORED
    return done.status


async def test_a_server_without_functions_runs_the_lua_as_scripts(tmp_path: Path) -> None:
    """As on Redis 6: FCALL and FUNCTION are unknown commands. The first call turns the runner
    to scripts for good, and runs go on as before."""
    server = start_redis_server(tmp_path, "--rename-command", "FCALL", "", "--rename-command", "FUNCTION", "")
    client = Redis(port=server.port)
    try:
        store = RedisCoordinationStore(client, "q")
        assert await _run_one_node(store, "r1") == "completed"
        assert not store.scripts.functions
        await store.scripts.load()  # loads the scripts, asks for no library
        shas = [s.sha for s in load_scripts().values()]
        assert await client.script_exists(*shas) == [True] * len(shas)
    finally:
        await client.aclose()
        server.stop()


async def test_a_user_who_may_not_load_functions_runs_the_lua_as_scripts(
    redis_client: Redis, redis_settings: RedisSettings, key_prefix: str
) -> None:
    """An ACL user without FUNCTION (NOPERM on FUNCTION LOAD) on a server that lacks the
    library: the runner turns to scripts and the run completes."""
    user, password = f"{key_prefix}-user", "secret"
    await redis_client.execute_command(
        "ACL", "SETUSER", user, "on", f">{password}", "~*", "&*", "+@all", "-function"
    )
    await redis_client.execute_command("FUNCTION", "FLUSH")
    limited = RedisSettings(
        **{**dataclasses.asdict(redis_settings), "username": user, "password": password}
    ).client()
    try:
        store = RedisCoordinationStore(limited, key_prefix)
        assert await _run_one_node(store, f"{key_prefix}-run") == "completed"
        assert not store.scripts.functions
        assert await redis_client.execute_command("FUNCTION", "LIST") == []
    finally:
        await limited.aclose()
        await redis_client.execute_command("ACL", "DELUSER", user)
