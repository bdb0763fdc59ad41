"""Mermaid diagrams (spec §1.3)."""

from __future__ import annotations

from bullflow import Flow, FlowRuntime, InMemoryEventLogger, NodeResult, to_mermaid, to_mermaid_for_run


def test_mermaid_of_a_blueprint() -> None:
    bp = {
        "id": "m",
        "nodes": [
            {"id": "A", "uses": "a", "params": {"k": 1}},
            {"id": "B", "uses": "b"},
            {"id": "C", "uses": "c"},
        ],
        "edges": [
            {"source": "A", "target": "B"},
            {"source": "A", "target": "C", "action": "go", "condition": "x > 1"},
        ],
    }
    assert to_mermaid(bp) == (
        "flowchart TD\n"
        '    A["A<br/>params: {"k":1}"]\n'
        '    B["B"]\n'
        '    C["C"]\n'
        "    A --> B\n"
        '    A -- "go | x > 1" --> C\n'
    )


def test_mermaid_of_an_empty_blueprint() -> None:
    assert to_mermaid({"id": "e"}) == "flowchart TD\n    empty[Empty Blueprint]"


async def test_mermaid_for_a_run_colours_nodes_and_taken_edges() -> None:
    def fail(ctx: object) -> None:
        raise RuntimeError("x")

    flow = (
        Flow("run")
        .node("A", lambda ctx: NodeResult(output=2))
        .node("B", lambda ctx: "b")
        .node("C", fail)
        .node("D", lambda ctx: "d")
        .edge("A", "B", condition="result.output > 1")
        .edge("A", "C")
        .edge("A", "D", condition="result.output > 5")
    )
    events = InMemoryEventLogger()
    result = await flow.run(FlowRuntime(event_bus=events))
    chart = to_mermaid_for_run(flow.to_blueprint(), events.events, skipped_node_ids=result.skipped_node_ids)
    assert "    style A fill:#d4edda,stroke:#c3e6cb\n" in chart
    assert "    style B fill:#d4edda,stroke:#c3e6cb\n" in chart
    assert "    style C fill:#f8d7da,stroke:#f5c6cb\n" in chart
    assert "    style D fill:#eeeeee" in chart
    assert "    linkStyle 0 stroke:#007bff,stroke-width:3px\n" in chart
    assert "linkStyle 2" not in chart
