"""Waiting for a run's result: a timeout or a cancelled wait leaves the handle able to wait again,
and a client whose connections have a socket timeout keeps its status subscription while idle."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

import pytest

from bullflow.client import Client
from bullflow.settings import RedisSettings

ONE: dict[str, Any] = {"id": "one", "nodes": [{"id": "A", "uses": "echo"}], "edges": []}


async def test_a_result_that_times_out_can_be_waited_for_again(make_adapter: Any, make_client: Any) -> None:
    """No worker yet: result(0.2) raises TimeoutError naming the run; once a worker runs it, the
    same handle's result() returns the completed run."""
    client = make_client([ONE])
    handle = await client.start("one", {"n": 1})
    with pytest.raises(TimeoutError, match=handle.run_id):
        await handle.result(0.2)
    make_adapter([ONE])
    result = await handle.result(20)
    assert result.status == "completed" and result.context["_outputs.A"] == "A(None)"


async def test_a_cancelled_wait_leaves_the_handle_able_to_wait(make_adapter: Any, make_client: Any) -> None:
    client = make_client([ONE])
    handle = await client.start("one")
    waiting = asyncio.get_running_loop().create_task(handle.result())
    await asyncio.sleep(0.05)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    make_adapter([ONE])
    assert (await handle.result(20)).status == "completed"


async def test_a_client_with_a_socket_timeout_keeps_its_subscription_while_idle(
    redis_settings: RedisSettings, key_prefix: str, make_adapter: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Connections with a 0.3 s socket timeout: the status subscription sits idle for 1.5 s (no
    run finishes), then delivers the status of a run that does, without reconnecting."""
    settings = dataclasses.replace(redis_settings, socket_timeout=0.3)
    client = Client(blueprints=[ONE], connection=settings, queue_name=key_prefix)
    try:
        with caplog.at_level(logging.WARNING, logger="bullflow.client"):
            handle = await client.start("one")
            await asyncio.sleep(1.5)
            make_adapter([ONE])
            assert (await handle.result(20)).status == "completed"
        assert not [r for r in caplog.records if r.name == "bullflow.client"]
    finally:
        await client.close()
