"""bench/report.py: the ratios it prints for the distributed W3 rows."""

from __future__ import annotations

from typing import Any

from bench.report import table


def _row(impl: str, median_s: float, **info: Any) -> dict[str, Any]:
    return {
        "name": f"test[{impl}]",
        "group": "distributed: W3 diamonds-500",
        "stats": {"median": median_s},
        "extra_info": {"impl": impl, "nodes": 2000, **info},
    }


def test_w3_rows_compare_with_flowcraft_measured_in_the_same_run() -> None:
    data = {
        "benchmarks": [
            _row(
                "lua-fast-2w",
                0.25,  # 8,000 nodes/s
                workers=2,
                loop="fast",
                coordination="lua",
                cpu_us_per_node=200,
                flowcraft_nodes_per_s=4100,
            ),
            _row("flowcraft-node-2w", 1.0, workers=2, cpu_us_per_node=800, flowcraft_nodes_per_s=4100),
        ]
    }
    lines = table(data)
    ours = next(line for line in lines if "lua-fast-2w" in line)
    theirs = next(line for line in lines if "flowcraft-node-2w" in line)
    assert "Flowcraft Node 4,100/s: 1.95x" in ours
    assert "Flowcraft measured here 2,000/s: 4.00x, 800 us CPU/node: 0.25 of it" in ours
    assert "the issue's figure 4,100/s: 0.49x" in theirs and "measured here" not in theirs


def test_distributed_rows_show_how_long_redis_waited_for_a_cpu() -> None:
    data = {
        "benchmarks": [_row("lua-fast-2w", 0.25, workers=2, cpu_us_per_node=200, redis_cpu_wait_pct=12.5)]
    }
    (row,) = (line for line in table(data) if "lua-fast-2w" in line)
    assert "200 us CPU/node; redis-server waited for a CPU 12.5% of the time" in row


def test_the_follow_row_shows_the_clients_cpu_per_status() -> None:
    data = {
        "benchmarks": [
            {
                "name": "test_client_follows_many_runs",
                "group": "notify: a client follows 2,000 runs",
                "stats": {"median": 0.25},
                "extra_info": {"impl": "lua", "items": 2000, "client_cpu_us_per_status": 31.5},
            }
        ]
    }
    (row,) = (line for line in table(data) if "follows" in line)
    assert "8,000" in row and "client 31.5 us CPU/status" in row
