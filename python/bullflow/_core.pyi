# Stub of the Rust extension module bullflow._core (rust_core/lib.rs). Keep it in step with the
# #[pymodule] there and with the pure-Python twin bullflow._pure, which has the same signatures.

from collections.abc import Sequence

from bullflow._pure.analysis import GraphAnalysis

__all__ = ["__version__", "analyze_graph"]

__version__: str

def analyze_graph(node_ids: Sequence[str], edges: Sequence[tuple[str, str] | list[str]]) -> GraphAnalysis:
    """Analyzes a workflow graph like Flowcraft's ``analyzeBlueprint``.

    ``node_ids`` is a sequence of str (duplicates allowed), ``edges`` a sequence of
    ``(source, target)`` tuples or lists of str (ids need not be declared). Returns a dict with
    ``start_node_ids``, ``terminal_node_ids``, ``cycles`` (lists of ids, first == last),
    ``node_count``, ``edge_count`` and ``is_dag``. Raises ``TypeError`` naming the index of the
    first bad element.
    """
