"""``lint_blueprint``: static checks of a blueprint against a node registry (Flowcraft's codes,
plus the problems Flowcraft only finds at run time, or never)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .analysis import _analyze
from .blueprint import BUILTIN_NODE_TYPES, Blueprint, BlueprintSource, load_blueprint
from .exceptions import ExpressionError
from .expressions import validate_expression

__all__ = ["LINT_CODES", "LintIssue", "LintResult", "lint_blueprint"]

LINT_CODES = (
    "MISSING_NODE_IMPLEMENTATION",
    "INVALID_BATCH_WORKER_KEY",
    "INVALID_SUBFLOW_BLUEPRINT_ID",
    "INVALID_EDGE_SOURCE",
    "INVALID_EDGE_TARGET",
    "ORPHAN_NODE",
    "DUPLICATE_NODE_ID",
    "UNKNOWN_FALLBACK_NODE",
    "INVALID_JOIN_STRATEGY",
    "INVALID_BACKOFF",
    "INVALID_CONDITION",
    "INVALID_TRANSFORM",
    "INVALID_LOOP_CONDITION",
    "MISSING_LOOP_CONTINUE_EDGE",
    "INVALID_RETRIES",
    "INVALID_TIMEOUT",
    "INVALID_RETRY_DELAY",
)


@dataclass(frozen=True, slots=True)
class LintIssue:
    code: str
    message: str
    node_id: str | None = None
    related_id: str | None = None
    path: str | None = None


@dataclass(frozen=True, slots=True)
class LintResult:
    issues: list[LintIssue] = field(default_factory=list)

    @property
    def is_valid(self) -> bool:
        return not self.issues


def lint_blueprint(
    blueprint: BlueprintSource,
    registry: Mapping[str, Any] | Collection[str],
    blueprints: Mapping[str, Any] | Iterable[str] | None = None,
) -> LintResult:
    """Check ``blueprint`` against ``registry`` (a mapping of uses keys, or a collection of keys)
    and the ids of the blueprints subflows may use."""
    bp = load_blueprint(blueprint)
    keys = set(registry.keys() if isinstance(registry, Mapping) else registry)
    known_blueprints = set(blueprints.keys() if isinstance(blueprints, Mapping) else (blueprints or ()))
    issues: list[LintIssue] = []
    add = issues.append
    ids = {n.id for n in bp.nodes}

    for i, node in enumerate(bp.nodes):
        uses = node.uses
        exempt = uses in BUILTIN_NODE_TYPES or uses.startswith("batch-") or uses.startswith("loop-")
        if not exempt and uses not in keys:
            add(
                LintIssue(
                    "MISSING_NODE_IMPLEMENTATION",
                    f"Node implementation key '{uses}' is not found in the provided registry.",
                    node.id,
                    path=f"nodes[{i}].uses",
                )
            )
    for i, node in enumerate(bp.nodes):
        if node.uses.startswith("batch-") and node.uses != "batch-gather":
            worker = node.params.get("workerUsesKey")
            if worker not in keys:
                add(
                    LintIssue(
                        "INVALID_BATCH_WORKER_KEY",
                        f"Batch node '{node.id}' references workerUsesKey '{worker}', which is not in the registry.",
                        node.id,
                        path=f"nodes[{i}].params.workerUsesKey",
                    )
                )
    for i, node in enumerate(bp.nodes):
        if node.uses == "subflow":
            child = node.params.get("blueprintId")
            if child is None or str(child) not in known_blueprints:
                add(
                    LintIssue(
                        "INVALID_SUBFLOW_BLUEPRINT_ID",
                        f"Subflow node '{node.id}' references blueprintId '{child}', which is not a known blueprint.",
                        node.id,
                        path=f"nodes[{i}].params.blueprintId",
                    )
                )
    for i, edge in enumerate(bp.edges):
        if edge.source not in ids:
            add(
                LintIssue(
                    "INVALID_EDGE_SOURCE",
                    f"Edge source '{edge.source}' does not exist.",
                    edge.source,
                    edge.target,
                    path=f"edges[{i}].source",
                )
            )
        if edge.target not in ids:
            add(
                LintIssue(
                    "INVALID_EDGE_TARGET",
                    f"Edge target '{edge.target}' does not exist.",
                    edge.target,
                    edge.source,
                    path=f"edges[{i}].target",
                )
            )
    if len(bp.nodes) > 1:
        for node_id in _orphans(bp):
            add(LintIssue("ORPHAN_NODE", f"Node '{node_id}' is not reachable from any start node.", node_id))
    _lint_definitions(bp, ids, add)
    return LintResult(issues)


def _orphans(bp: Blueprint) -> list[str]:
    analysis = _analyze(bp)
    succ: dict[str, list[str]] = {}
    for e in bp.edges:
        succ.setdefault(e.source, []).append(e.target)
    seen: set[str] = set()
    stack = list(analysis.start_node_ids)
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        stack.extend(succ.get(current, ()))
    return [n.id for n in bp.nodes if n.id not in seen]


def _lint_definitions(bp: Blueprint, ids: set[str], add: Any) -> None:
    first: dict[str, int] = {}
    for i, node in enumerate(bp.nodes):
        path = f"nodes[{i}]"
        if node.id in first:
            add(
                LintIssue(
                    "DUPLICATE_NODE_ID",
                    f"Node id '{node.id}' is defined more than once (first at nodes[{first[node.id]}]).",
                    node.id,
                    path=f"{path}.id",
                )
            )
        first.setdefault(node.id, i)
        cfg = node.config
        if cfg.fallback is not None and (cfg.fallback not in ids or cfg.fallback == node.id):
            add(
                LintIssue(
                    "UNKNOWN_FALLBACK_NODE",
                    f"Node '{node.id}' names fallback '{cfg.fallback}', which is not another node of the blueprint.",
                    node.id,
                    cfg.fallback,
                    path=f"{path}.config.fallback",
                )
            )
        if cfg.join_strategy is not None and cfg.join_strategy not in ("all", "any"):
            add(
                LintIssue(
                    "INVALID_JOIN_STRATEGY",
                    f"Node '{node.id}' has joinStrategy '{cfg.join_strategy}'; expected 'all' or 'any'.",
                    node.id,
                    path=f"{path}.config.joinStrategy",
                )
            )
        if cfg.backoff is not None and cfg.backoff not in ("fixed", "exponential"):
            add(
                LintIssue(
                    "INVALID_BACKOFF",
                    f"Node '{node.id}' has backoff '{cfg.backoff}'; expected 'fixed' or 'exponential'.",
                    node.id,
                    path=f"{path}.config.backoff",
                )
            )
        if cfg.max_retries is not None and cfg.max_retries < 1:
            add(
                LintIssue(
                    "INVALID_RETRIES",
                    f"Node '{node.id}' has maxRetries {cfg.max_retries}; it counts total attempts and must be >= 1.",
                    node.id,
                    path=f"{path}.config.maxRetries",
                )
            )
        if cfg.timeout is not None and cfg.timeout <= 0:
            add(
                LintIssue(
                    "INVALID_TIMEOUT",
                    f"Node '{node.id}' has timeout {cfg.timeout}; it must be a positive number of milliseconds.",
                    node.id,
                    path=f"{path}.config.timeout",
                )
            )
        if cfg.retry_delay is not None and cfg.retry_delay < 0:
            add(
                LintIssue(
                    "INVALID_RETRY_DELAY",
                    f"Node '{node.id}' has retryDelay {cfg.retry_delay}; it must be >= 0 milliseconds.",
                    node.id,
                    path=f"{path}.config.retryDelay",
                )
            )
        if node.uses == "loop-controller":
            condition = node.params.get("condition")
            problem = _expression_problem(condition)
            if problem:
                add(
                    LintIssue(
                        "INVALID_LOOP_CONDITION",
                        f"Loop controller '{node.id}' condition: {problem}",
                        node.id,
                        path=f"{path}.params.condition",
                    )
                )
            if not any(e.source == node.id and e.action == "continue" for e in bp.edges):
                add(
                    LintIssue(
                        "MISSING_LOOP_CONTINUE_EDGE",
                        f"Loop '{node.id}' has no continue edge to start node.",
                        node.id,
                        path=path,
                    )
                )
    for i, edge in enumerate(bp.edges):
        for attr, code in (("condition", "INVALID_CONDITION"), ("transform", "INVALID_TRANSFORM")):
            source = getattr(edge, attr)
            if source is None:
                continue
            problem = _expression_problem(source)
            if problem:
                add(
                    LintIssue(
                        code,
                        f"Edge {edge.source} -> {edge.target} {attr}: {problem}",
                        edge.source,
                        edge.target,
                        path=f"edges[{i}].{attr}",
                    )
                )


def _expression_problem(source: Any) -> str | None:
    if not isinstance(source, str):
        return f"expected an expression string, got {type(source).__name__}"
    try:
        validate_expression(source)
    except ExpressionError as err:
        return str(err)
    return None
