"""Mermaid flowcharts of a blueprint, optionally coloured by a run's events (Flowcraft's
``generateMermaid`` / ``generateMermaidForRun``)."""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from .blueprint import BlueprintSource, load_blueprint
from .events import FlowEvent

__all__ = ["to_mermaid", "to_mermaid_for_run"]

SUCCESS_STYLE = "fill:#d4edda,stroke:#c3e6cb"
ERROR_STYLE = "fill:#f8d7da,stroke:#f5c6cb"
SKIPPED_STYLE = "fill:#eeeeee,stroke:#cccccc,color:#888888"
TAKEN_EDGE_STYLE = "stroke:#007bff,stroke-width:3px"


def to_mermaid(blueprint: BlueprintSource) -> str:
    bp = load_blueprint(blueprint)
    if not bp.nodes:
        return "flowchart TD\n    empty[Empty Blueprint]"
    lines = ["flowchart TD\n"]
    for node in bp.nodes:
        label = node.id
        if node.params:
            label += "<br/>params: " + orjson.dumps(dict(node.params)).decode()
        lines.append(f'    {node.id}["{label}"]\n')
    for edge in bp.edges:
        parts = [p for p in (edge.action, edge.condition, edge.transform) if p]
        if parts:
            lines.append(f'    {edge.source} -- "{" | ".join(parts)}" --> {edge.target}\n')
        else:
            lines.append(f"    {edge.source} --> {edge.target}\n")
    return "".join(lines)


def to_mermaid_for_run(
    blueprint: BlueprintSource, events: Iterable[FlowEvent], *, skipped_node_ids: Iterable[str] = ()
) -> str:
    """The flowchart with finished nodes green, failed nodes red (success wins), skipped nodes
    grey, and the edges the run evaluated as true drawn thick."""
    bp = load_blueprint(blueprint)
    base = to_mermaid(bp)
    finished: set[str] = set()
    failed: set[str] = set()
    taken: set[str] = set()
    for event in events:
        payload = event.payload
        if event.type == "node:finish":
            finished.add(str(payload.get("nodeId")))
        elif event.type == "node:error":
            failed.add(str(payload.get("nodeId")))
        elif event.type == "edge:evaluate" and payload.get("result"):
            taken.add(f"{payload.get('source')}->{payload.get('target')}")
    if not bp.nodes:
        return base
    lines = [base]
    for node in bp.nodes:
        if node.id in finished:
            lines.append(f"    style {node.id} {SUCCESS_STYLE}\n")
        elif node.id in failed:
            lines.append(f"    style {node.id} {ERROR_STYLE}\n")
    skipped = set(skipped_node_ids) - finished - failed
    for node in bp.nodes:
        if node.id in skipped:
            lines.append(f"    style {node.id} {SKIPPED_STYLE}\n")
    for i, edge in enumerate(bp.edges):
        if f"{edge.source}->{edge.target}" in taken:
            lines.append(f"    linkStyle {i} {TAKEN_EDGE_STYLE}\n")
    return "".join(lines)
