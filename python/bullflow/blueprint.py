"""Blueprints: Flowcraft's JSON workflow graphs, loaded, sanitised and type-checked.

A blueprint is ``{"id", "nodes": [...], "edges": [...], "metadata": {...}}`` (Flowcraft's format).
``nodes``/``edges`` may also be objects (their values are taken); unknown fields are dropped, as
Flowcraft's ``sanitizeBlueprint`` does. Every type problem raises :class:`BlueprintError` naming the
JSON path, e.g. ``nodes[3].config.maxRetries: expected an integer, got "3"``. The parsing and the
checks are the core's ``parse_blueprint`` (Rust, or its pure-Python twin: see ``bullflow._impl``);
this module builds the model from what it returns.

The model is immutable: the runtimes never change a blueprint they were given.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import orjson

from ._impl import parse_blueprint
from ._pure.blueprint import describe as describe
from .exceptions import BlueprintError

__all__ = [
    "Blueprint",
    "BlueprintSource",
    "EdgeDefinition",
    "NodeConfig",
    "NodeDefinition",
    "load_blueprint",
]

JoinStrategy = Literal["all", "any"]
BUILTIN_NODE_TYPES = frozenset(
    {"wait", "sleep", "subflow", "batch-scatter", "batch-gather", "loop-controller"}
)

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """A node's ``config``. ``max_retries`` counts TOTAL attempts (default 1 = no retry).

    ``retry_delay`` and ``timeout`` are milliseconds, like Flowcraft's. ``backoff`` is ``"fixed"``
    (every retry waits ``retry_delay``) or ``"exponential"`` (``retry_delay * 2**(attempt-1)``).
    """

    max_retries: int | None = None
    retry_delay: float | None = None
    backoff: str | None = None
    timeout: float | None = None
    fallback: str | None = None
    join_strategy: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for attr, key in _CONFIG_FIELDS:
            value = getattr(self, attr)
            if value is not None:
                out[key] = value
        return out


_CONFIG_FIELDS = (
    ("max_retries", "maxRetries"),
    ("retry_delay", "retryDelay"),
    ("backoff", "backoff"),
    ("timeout", "timeout"),
    ("fallback", "fallback"),
    ("join_strategy", "joinStrategy"),
)
_DEFAULT_CONFIG = NodeConfig()


@dataclass(frozen=True, slots=True)
class NodeDefinition:
    """One node: ``uses`` is the registry key of its implementation."""

    id: str
    uses: str
    params: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    inputs: str | Mapping[str, str] | None = None
    config: NodeConfig = _DEFAULT_CONFIG

    @property
    def join_strategy(self) -> str:
        return self.config.join_strategy or "all"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "uses": self.uses}
        if self.params:
            out["params"] = dict(self.params)
        if self.inputs is not None:
            out["inputs"] = self.inputs if isinstance(self.inputs, str) else dict(self.inputs)
        config = self.config.to_dict()
        if config:
            out["config"] = config
        return out


@dataclass(frozen=True, slots=True)
class EdgeDefinition:
    """A directed edge. ``action`` selects it by the source's result action, ``condition`` guards
    it, ``transform`` computes the target's input."""

    source: str
    target: str
    action: str | None = None
    condition: str | None = None
    transform: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source, "target": self.target}
        if self.action is not None:
            out["action"] = self.action
        if self.condition is not None:
            out["condition"] = self.condition
        if self.transform is not None:
            out["transform"] = self.transform
        return out


@dataclass(frozen=True)
class Blueprint:
    """A workflow graph. Build one with :func:`load_blueprint` or the ``Flow`` builder."""

    id: str
    nodes: tuple[NodeDefinition, ...] = ()
    edges: tuple[EdgeDefinition, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    _node_index: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index = self._node_index
        for i, node in enumerate(self.nodes):
            index.setdefault(node.id, i)

    @property
    def version(self) -> str | None:
        """``metadata.version``: the version distributed runtimes pin runs to."""
        value = self.metadata.get("version")
        return value if isinstance(value, str) else None

    def get_node(self, node_id: str) -> NodeDefinition | None:
        i = self._node_index.get(node_id)
        return None if i is None else self.nodes[i]

    def has_node(self, node_id: str) -> bool:
        return node_id in self._node_index

    def to_dict(self) -> dict[str, Any]:
        """The Flowcraft JSON form (camelCase keys, absent fields omitted)."""
        out: dict[str, Any] = {
            "id": self.id,
            "nodes": [n.to_dict() for n in self.nodes],
            "edges": [e.to_dict() for e in self.edges],
        }
        if self.metadata:
            out["metadata"] = dict(self.metadata)
        return out

    def to_json(self, *, indent: bool = False) -> str:
        option = orjson.OPT_INDENT_2 if indent else 0
        return orjson.dumps(self.to_dict(), option=option).decode()


BlueprintSource = Blueprint | Mapping[str, Any] | str | bytes | os.PathLike[str]


def load_blueprint(source: BlueprintSource, *, id: str | None = None) -> Blueprint:
    """Load a blueprint from a dict, a JSON string/bytes, or a file path.

    ``id`` fills in (or overrides) the blueprint id; a file without an ``id`` field takes its file
    name without ``.json``, as Flowcraft's example loader does.
    """
    if isinstance(source, Blueprint):
        if id is not None and id != source.id:
            return Blueprint(id=id, nodes=source.nodes, edges=source.edges, metadata=source.metadata)
        return source
    if not isinstance(source, os.PathLike):
        return _from_sanitised(parse_blueprint(source, id=id))
    path = Path(source)
    try:
        raw_bytes = path.read_bytes()
    except OSError as err:
        raise BlueprintError(f"cannot read blueprint file: {err.strerror or err}", str(path)) from err
    try:
        data = parse_blueprint(raw_bytes, id=id, default_id=path.stem)
    except BlueprintError as err:
        # Malformed JSON names the file; a problem in a well-formed document names its path.
        if err.path or not err.problem.startswith("malformed JSON"):
            raise
        raise BlueprintError(f"{path}: {err.problem}") from None
    return _from_sanitised(data)


def _from_sanitised(data: Mapping[str, Any]) -> Blueprint:
    """The model of a blueprint ``parse_blueprint`` has checked and sanitised (no checks here)."""
    return Blueprint(
        id=data["id"],
        nodes=tuple(_node_from_sanitised(node) for node in data["nodes"]),
        edges=tuple(
            EdgeDefinition(
                edge["source"],
                edge["target"],
                edge.get("action"),
                edge.get("condition"),
                edge.get("transform"),
            )
            for edge in data["edges"]
        ),
        metadata=data["metadata"],
    )


def _node_from_sanitised(node: Mapping[str, Any]) -> NodeDefinition:
    config = node.get("config")
    return NodeDefinition(
        id=node["id"],
        uses=node["uses"],
        params=node.get("params", _EMPTY),
        inputs=node.get("inputs"),
        config=_DEFAULT_CONFIG
        if not config
        else NodeConfig(
            max_retries=config.get("maxRetries"),
            retry_delay=config.get("retryDelay"),
            backoff=config.get("backoff"),
            timeout=config.get("timeout"),
            fallback=config.get("fallback"),
            join_strategy=config.get("joinStrategy"),
        ),
    )


def _build_node(raw: Any, path: str) -> NodeDefinition:
    """One node definition from raw data, checked like a blueprint's; errors are named under
    ``path`` (``"dynamicNodes"``, ``"dynamicNodes.config.maxRetries"``...)."""
    try:
        data = parse_blueprint({"id": "", "nodes": [raw]})
    except BlueprintError as err:
        raise _rename_path(err, "nodes[0]", path) from None
    return _node_from_sanitised(data["nodes"][0])


def _rename_path(err: BlueprintError, old: str, new: str) -> BlueprintError:
    """``err`` with the leading ``old`` of its path replaced by ``new`` (which may be empty)."""
    path = err.path
    if path == old or path.startswith((old + ".", old + "[")):
        rest = path[len(old) :]
        path = new + rest if new else rest.lstrip(".")
    return BlueprintError(err.problem, path, blueprint_id=err.blueprint_id)


def node_config_from(value: NodeConfig | Mapping[str, Any] | None, path: str = "config") -> NodeConfig:
    """A NodeConfig from a NodeConfig, or a mapping with Flowcraft (camelCase) or snake_case keys."""
    if value is None:
        return _DEFAULT_CONFIG
    if isinstance(value, NodeConfig):
        return value
    if not isinstance(value, Mapping):
        raise BlueprintError(f"expected an object, got {describe(value)}", path)
    snake_to_camel = dict(_CONFIG_FIELDS)
    normalised = {snake_to_camel.get(k, k): v for k, v in value.items()}
    unknown = set(normalised) - set(snake_to_camel.values())
    if unknown:
        raise BlueprintError(f"unknown config field {sorted(unknown)[0]!r}", path)
    owner = path[: -len(".config")] if path.endswith(".config") else ""
    return _build_node({"id": "", "uses": "", "config": normalised}, owner).config
