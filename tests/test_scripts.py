"""The Lua script loader: file names, headers, the return-code table, NOSCRIPT recovery."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from redis.asyncio import Redis

from bullflow.exceptions import ScriptError
from bullflow.scripts import LuaScript, ScriptCode, ScriptRunner, load_scripts

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
    runner = ScriptRunner(redis_client)
    await redis_client.script_flush()
    assert await runner.run("storeGraph", [f"{key_prefix}:g"], ["meta", "{}"]) == ScriptCode.STORED
    await redis_client.script_flush()
    assert await runner.run("storeGraph", [f"{key_prefix}:g"], ["meta", "{}"]) == ScriptCode.ALREADY_PRESENT
