"""Print the `make bench` table from a pytest-benchmark JSON file: per case the median time,
nodes/s where the case counts nodes, the Rust/Python ratio where a case ran with both core
implementations, and the ratio to a published reference where the case names one."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any


def _median_ms(bench: dict[str, Any]) -> float:
    return float(bench["stats"]["median"]) * 1000


def table(data: dict[str, Any]) -> list[str]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for bench in data.get("benchmarks", []):
        groups[bench.get("group") or bench["name"]].append(bench)
    baseline = next(
        (
            b["extra_info"]["items"] / b["stats"]["median"]
            for b in data.get("benchmarks", [])
            if b.get("extra_info", {}).get("baseline")
        ),
        None,
    )
    lines = [f"{'case':<48} {'impl':<18} {'median ms':>11} {'per second':>13}  comparison"]
    for group in sorted(groups):
        entries = groups[group]
        by_impl = {b.get("extra_info", {}).get("impl", ""): b for b in entries}
        for bench in sorted(entries, key=lambda b: b.get("extra_info", {}).get("impl", "")):
            info = bench.get("extra_info", {})
            median = _median_ms(bench)
            units = info.get("nodes") or info.get("steps") or info.get("items") or info.get("instances")
            rate = f"{units / (median / 1000):,.0f}" if units else "-"
            notes = []
            impl = info.get("impl", "")
            if impl == "rust" and "python" in by_impl:
                notes.append(f"rust is {_median_ms(by_impl['python']) / median:.1f}x python")
            if info.get("p99_ms") is not None:
                notes.append(f"p50 {info['p50_ms']:g} ms, p99 {info['p99_ms']:g} ms")
            if info.get("client_cpu_us_per_status"):
                notes.append(f"client {info['client_cpu_us_per_status']:g} us CPU/status")
            if info.get("cpu_us_per_node"):
                notes.append(f"{info['cpu_us_per_node']:g} us CPU/node")
            if info.get("redis_cpu_wait_pct") is not None:
                notes.append(f"redis-server waited for a CPU {info['redis_cpu_wait_pct']:g}% of the time")
            if info.get("cpu_us_per_instance"):
                notes.append(f"{info['cpu_us_per_instance']:g} us CPU/instance")
            if info.get("bullmq_workflows_per_core") and info.get("instances_per_cpu_s"):
                per_core = info["bullmq_workflows_per_core"]
                notes.append(
                    f"{info['instances_per_cpu_s']:,.0f}/CPU-s, bullmq-workflows ~{per_core}/core: "
                    f"{info['instances_per_cpu_s'] / per_core:.2f}x"
                )
            if info.get("us_per_cached_step") is not None:
                notes.append(
                    f"{info['us_per_cached_step']:g} us/cached step, {info['redis_round_trips']} round trips"
                )
            if units and baseline and group.startswith("distributed:"):
                notes.append(f"{units / (median / 1000) / baseline:.2f}x the bullmq no-op drain")
            if info.get("coordination") == "lua":
                twin = next(
                    (
                        b
                        for b in entries
                        if b.get("extra_info", {}).get("coordination") == "python"
                        and b["extra_info"].get("workers") == info.get("workers")
                        and b["extra_info"].get("loop") == info.get("loop")
                    ),
                    None,
                )
                if twin is not None:
                    notes.append(f"lua is {_median_ms(twin) / median:.1f}x python")
            if info.get("flowcraft_nodes_per_s") and units:
                flowcraft = info["flowcraft_nodes_per_s"]
                label = "the issue's figure" if impl.startswith("flowcraft-node") else "Flowcraft Node"
                notes.append(f"{label} {flowcraft:,}/s: {units / (median / 1000) / flowcraft:.2f}x")
            measured = by_impl.get(f"flowcraft-node-{info.get('workers')}w")
            if (
                measured is not None
                and info.get("loop") == "fast"
                and info.get("coordination") == "lua"
                and units
            ):
                fc_info = measured["extra_info"]
                fc_rate = fc_info["nodes"] / (_median_ms(measured) / 1000)
                note = f"Flowcraft measured here {fc_rate:,.0f}/s: {units / (median / 1000) / fc_rate:.2f}x"
                if info.get("cpu_us_per_node") and fc_info.get("cpu_us_per_node"):
                    note += (
                        f", {fc_info['cpu_us_per_node']:g} us CPU/node:"
                        f" {info['cpu_us_per_node'] / fc_info['cpu_us_per_node']:.2f} of it"
                    )
                notes.append(note)
            if info.get("flowcraft_ms"):
                notes.append(
                    f"Flowcraft {info['flowcraft_ms']:g} ms: {info['flowcraft_ms'] / median:.2f}x faster"
                )
            lines.append(f"{group:<48} {impl:<18} {median:>11.4f} {rate:>13}  {'; '.join(notes)}")
    return lines


def main(path: str) -> int:
    data = json.loads(Path(path).read_text())
    if not data.get("benchmarks"):
        print("no benchmarks in", path)
        return 1
    machine = data.get("machine_info", {})
    cpu = machine.get("cpu", {}).get("brand_raw", "unknown cpu")
    print(
        f"\nbullflow benchmarks: {cpu}, {machine.get('cpu', {}).get('count', '?')} cores, python {machine.get('python_version')}"
    )
    print("\n".join(table(data)))
    print(f"\n(medians of one run; raw data: {path}, compare runs with `pytest-benchmark compare`)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ".benchmarks/latest.json"))
