# Stub of the Rust extension module bullflow._core (rust_core/lib.rs). Keep it in step with the
# #[pymodule] there and with the pure-Python twin bullflow._pure, which has the same signatures.

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, final

from bullflow._pure.analysis import GraphAnalysis

__all__ = [
    "CompiledGraph",
    "RunState",
    "__version__",
    "analyze_graph",
    "compile_graph",
    "decode_hash",
    "decode_hmget",
    "decode_job_payload",
    "decode_value",
    "encode_hset_args",
    "encode_job_payload",
    "encode_value",
    "parse_blueprint",
]

__version__: str

def analyze_graph(node_ids: Sequence[str], edges: Sequence[tuple[str, str] | list[str]]) -> GraphAnalysis:
    """Analyzes a workflow graph like Flowcraft's ``analyzeBlueprint``.

    ``node_ids`` is a sequence of str (duplicates allowed), ``edges`` a sequence of
    ``(source, target)`` tuples or lists of str (ids need not be declared). Returns a dict with
    ``start_node_ids``, ``terminal_node_ids``, ``cycles`` (lists of ids, first == last),
    ``node_count``, ``edge_count`` and ``is_dag``. Raises ``TypeError`` naming the index of the
    first bad element.
    """

# ---- the wire codec (rust_core/codec.rs; twin: bullflow._pure.codec) ----------------------------

def encode_value(value: Any, key: str = "") -> bytes:
    """Encodes a context value as UTF-8 JSON text, exactly as ``JSON.stringify`` would.

    ``None``, bool, int (``-(2**63) .. 2**64 - 1``), finite float (written like JavaScript's
    ``Number.prototype.toString``), str, list, tuple and dict with str keys (in insertion order),
    and subclasses of these (as their base type's value), nested at most 512 deep. Anything else
    raises ``CodecError`` naming ``key`` and the JSON path of the value, e.g.
    ``cannot encode a set at $.items[2]``.
    """

def decode_value(data: bytes | str, key: str = "") -> Any:
    """Decodes JSON text (bytes or str) to a Python value, as ``JSON.parse`` reads it.

    Objects become dicts in document order (a duplicate key: the last value wins), integer
    literals in ``-(2**63) .. 2**64 - 1`` ints, other numbers floats; empty input is ``None``
    (Flowcraft stores ``''`` for ``undefined``). Invalid JSON raises ``CodecError`` naming
    ``key``, what is wrong and its byte offset.
    """

def encode_hset_args(writes: Mapping[str, Any]) -> list[bytes]:
    """The arguments of one ``HSET`` call: ``[key1, value1, key2, value2, ...]``."""

def decode_hash(reply: Mapping[bytes | str, bytes | str] | Sequence[bytes | str]) -> dict[str, Any]:
    """Decodes an ``HGETALL`` reply (a mapping, or a flat sequence) to ``{field: value}``."""

def decode_hmget(keys: Sequence[str], values: Sequence[bytes | str | None]) -> dict[str, Any]:
    """Decodes an ``HMGET`` reply for ``keys``; missing fields (``None``) are left out."""

def encode_job_payload(payload: Mapping[str, Any]) -> bytes:
    """Encodes the data of an ``executeNode`` job (str ``runId``, ``blueprintId``, ``nodeId``)."""

def decode_job_payload(data: bytes | str) -> dict[str, Any]:
    """Decodes and checks the data of an ``executeNode`` job."""

# ---- blueprints (rust_core/blueprint.rs; twin: bullflow._pure.blueprint) ------------------------

def parse_blueprint(
    source: str | bytes | Mapping[str, Any], id: str | None = None, default_id: str | None = None
) -> dict[str, Any]:
    """Parses and checks a Flowcraft blueprint; returns it sanitised, as plain data.

    ``source`` is JSON text (``str``, or UTF-8 ``bytes``) or an already decoded mapping. The
    result is ``{"id", "nodes", "edges", "metadata"}`` with only the known fields. ``id``
    overrides the blueprint id; ``default_id`` is used when the document has no (or a null) id.
    Raises ``BlueprintError`` naming the JSON path of the first problem.
    """

# ---- the graph compiler and scheduler (rust_core/graph.rs; twin: bullflow._pure.graph) ----------

@final
class CompiledGraph:
    """A compiled blueprint, by index. Node ``i`` is ``blueprint["nodes"][i]``; edge ``e`` is
    ``blueprint["edges"][e]``."""

    def __new__(
        cls, blueprint: Mapping[str, Any] | str | bytes | bytearray, strict: bool = False
    ) -> CompiledGraph: ...
    @property
    def blueprint_id(self) -> str: ...
    @property
    def node_ids(self) -> list[str]: ...
    @property
    def node_count(self) -> int: ...
    @property
    def edge_count(self) -> int: ...
    @property
    def start(self) -> list[int]: ...
    @property
    def content_hash(self) -> str: ...
    def index_of(self, node_id: str) -> int | None: ...
    def uses(self, i: int) -> str: ...
    def join_any(self, i: int) -> bool: ...
    def is_loop_controller(self, i: int) -> bool: ...
    def preds(self, i: int) -> list[int]: ...
    def back_preds(self, i: int) -> list[int]: ...
    def out_edges(self, i: int) -> list[int]:
        """Edge indices leaving node ``i``: its own, then those it inherits as a fallback."""
    def edge(self, e: int) -> tuple[int, int, str | None, bool]:
        """(source node, target node, action, has a condition) of edge ``e``."""
    def fallback(self, i: int) -> int | None: ...
    def loop_body(self, i: int) -> list[int]: ...
    def loop_start(self, i: int) -> int | None: ...
    def successors_by_action(self, i: int) -> dict[str, list[int]]:
        """Node ``i``'s own and inherited edges grouped by action ("" = unlabelled/default)."""
    def analysis(self) -> dict[str, Any]:
        """Flowcraft's analysis plus strongly connected components, a topological order,
        unreachable nodes, distinct predecessor counts and loop bodies (all by node id)."""
    def lua_encoding(self) -> list[bytes]:
        """HSET arguments of the compiled graph as the Lua coordination scripts read it."""

@final
class RunState:
    """The scheduling state of one run over a :class:`CompiledGraph` (plus nodes added while it
    runs, e.g. batch workers). Node and edge ids are the graph's indices; added nodes and their
    edges get the next indices."""

    def __new__(cls, graph: CompiledGraph, max_waves: float = 10000) -> RunState: ...
    @property
    def graph(self) -> CompiledGraph: ...
    @property
    def max_waves(self) -> float: ...
    @property
    def node_count(self) -> int: ...
    def start(self) -> list[int]: ...
    def mark_running(self, i: int) -> None: ...
    def complete(self, i: int, taken: Iterable[int] | None) -> tuple[list[int], list[int]]:
        """Node ``i`` completed and took the edges ``taken`` (None: all of its outgoing edges).
        Returns (nodes that became ready, nodes that became skipped)."""
    def complete_with_fallback(self, i: int) -> tuple[list[int], list[int]]:
        """Node ``i`` failed and its fallback node takes over (and then its edges)."""
    def fail(self, i: int) -> None: ...
    def suspend(self, i: int) -> None:
        """Node ``i`` is paused (awaiting a resume)."""
    def reset_pending(self, i: int) -> None:
        """Node ``i`` did not run after all (the run was cancelled)."""
    def resume(self, i: int, taken: Iterable[int] | None) -> tuple[list[int], list[int]]: ...
    def fallback_origin(self, i: int) -> int | None:
        """The node whose edges fallback node ``i`` is currently carrying, if any."""
    def add_dynamic_nodes(self, pred: int, gather: int | None, workers: int, continuation: bool) -> list[int]:
        """Add ``workers`` nodes (predecessor ``pred``; successor ``gather`` and the continuation)
        and, with ``continuation``, one node that waits for all of them (successor ``gather``).
        They become predecessors of ``gather``. Returns the new indices, workers first."""
    def arrive(self, nodes: Iterable[int], pred: int) -> list[int]:
        """``pred`` arrives at ``nodes`` (used for freshly added dynamic nodes). Returns the nodes
        that became ready."""
    def out_edges(self, i: int) -> list[int]: ...
    def edge_target(self, e: int) -> int: ...
    def node_status(self, i: int) -> int: ...
    def statuses(self) -> list[int]: ...
    def nodes_with_status(self, status: int) -> list[int]: ...
    def snapshot(self) -> dict[str, Any]:
        """JSON-friendly state, by index, with the graph's content hash."""
    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Continue from a :meth:`snapshot` of a run of the same graph. A snapshot with an index
        or a status out of range raises ``ValueError`` and leaves the state as it was."""

def compile_graph(
    blueprint: Mapping[str, Any] | str | bytes | bytearray, strict: bool = False
) -> CompiledGraph:
    """Compiles a sanitised blueprint: a mapping, or its JSON text (str or bytes). Raises
    ``BlueprintError`` (``StrictModeError`` for a cycle in strict mode) for a blueprint that
    cannot run."""
