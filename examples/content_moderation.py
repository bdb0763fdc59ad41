"""`make demo`: run the content-moderation example (blueprint 400 with subflows 401-403)
in-process with the deterministic stub LLM, and print its final output."""

from __future__ import annotations

import asyncio
import sys

from .declarative import USE_CASES, make_runtime


async def main() -> int:
    case = USE_CASES["content-moderation"]
    runtime = make_runtime()
    result = await runtime.run(case.entry, case.initial_context)
    print(f"run {result.run_id}: {result.status}")
    if result.status != "completed":
        for error in result.errors:
            print(f"  error: {error.message}", file=sys.stderr)
        return 1
    print(f"route taken: {result.context['_outputs.triage_post']}")
    print(result.context["final_output"])
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
