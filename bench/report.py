"""Print the `make bench` table from a pytest-benchmark JSON file: median time per case, nodes/s,
and the ratio to the reference each case names (Flowcraft's published figure, or the baseline
implementation measured in the same run)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def rows(data: dict[str, Any]) -> list[tuple[str, str, float, float | None, str]]:
    out = []
    for bench in data.get("benchmarks", []):
        info = bench.get("extra_info", {})
        median_ms = bench["stats"]["median"] * 1000
        nodes = info.get("nodes")
        rate = (nodes / (median_ms / 1000)) if nodes else None
        reference = ""
        if info.get("flowcraft_ms"):
            reference = f"Flowcraft {info['flowcraft_ms']:g} ms -> {info['flowcraft_ms'] / median_ms:.2f}x"
        out.append((bench.get("group") or bench["name"], info.get("impl", ""), median_ms, rate, reference))
    return out


def main(path: str) -> int:
    data = json.loads(Path(path).read_text())
    table = rows(data)
    if not table:
        print("no benchmarks in", path)
        return 1
    machine = data.get("machine_info", {})
    print(
        f"\nbullflow benchmarks ({machine.get('cpu', {}).get('brand_raw', 'cpu?')}, python {machine.get('python_version')})"
    )
    print(f"{'case':<40} {'impl':<7} {'median ms':>10} {'nodes/s':>12}  reference")
    for group, impl, median_ms, rate, reference in sorted(table):
        rate_text = f"{rate:,.0f}" if rate else "-"
        print(f"{group:<40} {impl:<7} {median_ms:>10.3f} {rate_text:>12}  {reference}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ".benchmarks/latest.json"))
