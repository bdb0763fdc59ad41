"""The safe expression evaluator: cost of one evaluation of typical edge conditions."""

from __future__ import annotations

from typing import Any

import pytest

from bullflow import compile_expression

CASES = [
    ("range condition", "route.total >= 500 && route.total <= 2000", {"route": {"total": 1665}}, True),
    ("hyphenated id", "check-status.output.ok === true", {"check-status": {"output": {"ok": True}}}, True),
    ("flat output key", "_outputs.route.total > 2000", {"_outputs.route": {"total": 1665}}, False),
    ("transform", 'context["increment"] * 2', {"context": {"increment": 21}}, 42),
]


@pytest.mark.parametrize(("case", "source", "scope", "expected"), CASES, ids=[c[0] for c in CASES])
def test_evaluate(benchmark: Any, case: str, source: str, scope: dict[str, Any], expected: Any) -> None:
    benchmark.group = f"expressions: {case}"
    benchmark.extra_info["impl"] = "python"
    expression = compile_expression(source)
    assert benchmark(expression.evaluate, scope) == expected
