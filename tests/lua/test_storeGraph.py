"""lua/storeGraph-1.lua against a real redis-server."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from bullflow._impl import compile_graph
from bullflow.exceptions import ScriptError
from bullflow.keys import graph_key
from bullflow.scripts import ScriptCode, ScriptRunner


def _graph(key_prefix: str) -> object:
    return compile_graph(
        {
            "id": key_prefix,
            "nodes": [{"id": "A", "uses": "x"}, {"id": "B", "uses": "x", "config": {"joinStrategy": "any"}}],
            "edges": [{"source": "A", "target": "B", "action": "go"}],
            "metadata": {},
        }
    )


async def test_stores_the_graph_once(redis_client: Redis, key_prefix: str) -> None:
    graph = _graph(key_prefix)
    runner = ScriptRunner(redis_client)
    assert await runner.store_graph(graph) is True
    stored = await redis_client.hgetall(graph_key(graph.content_hash))  # type: ignore[attr-defined]
    encoding = graph.lua_encoding()  # type: ignore[attr-defined]
    assert stored == dict(zip(encoding[::2], encoding[1::2], strict=True))
    assert await runner.store_graph(graph) is False
    assert await redis_client.ttl(graph_key(graph.content_hash)) == -1


@pytest.mark.parametrize("args", [[], ["meta"], ["a", "1", "b"]])
async def test_bad_arguments(redis_client: Redis, key_prefix: str, args: list[str]) -> None:
    runner = ScriptRunner(redis_client)
    code = await runner.run("storeGraph", [f"{key_prefix}:graph"], args)
    assert code == ScriptCode.BAD_ARGUMENTS
    assert await redis_client.exists(f"{key_prefix}:graph") == 0


async def test_wrong_number_of_keys_is_refused(redis_client: Redis) -> None:
    with pytest.raises(ScriptError, match="storeGraph: expects 1 keys, got 2"):
        await ScriptRunner(redis_client).run("storeGraph", ["a", "b"], ["meta", "{}"])
