"""A worker process for the distributed tests: ``python -m tests.integration.worker_main
--redis-url URL --queue Q --blueprints FILE.json [--concurrency N] [--coordination lua|python]
[--lock-ms N] [--stalled-ms N] [--worker-loop fast|chained|bullmq]``. Blueprints come from a JSON file (a list of blueprints) the
test writes; nodes from ``tests.integration.nodes``. SIGTERM finishes in-flight nodes."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal

from bullflow.adapter import BullMQAdapter

from .nodes import REGISTRY


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--blueprints", required=True)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--coordination", default="lua")
    parser.add_argument("--lock-ms", type=int, default=30_000)
    parser.add_argument("--stalled-ms", type=int, default=30_000)
    parser.add_argument("--max-stalled", type=int, default=1)
    parser.add_argument("--worker-loop", default="fast")
    args = parser.parse_args()
    logging.basicConfig(level=os.environ.get("BULLFLOW_LOG", "WARNING"))
    with open(args.blueprints) as handle:
        blueprints = json.load(handle)
    adapter = BullMQAdapter(
        registry=REGISTRY,
        blueprints=blueprints,
        connection=args.redis_url,
        queue_name=args.queue,
        concurrency=args.concurrency,
        coordination_store=args.coordination,
        lock_duration_ms=args.lock_ms,
        stalled_interval_ms=args.stalled_ms,
        max_stalled_count=args.max_stalled,
        worker_loop=args.worker_loop,
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    adapter.start()
    print("ready", flush=True)
    await stop.wait()
    await adapter.close()
    os._exit(0)


if __name__ == "__main__":
    asyncio.run(main())
