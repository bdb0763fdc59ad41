"""Blueprints: Flowcraft's JSON workflow graphs, loaded, sanitised and type-checked.

A blueprint is ``{"id", "nodes": [...], "edges": [...], "metadata": {...}}`` (Flowcraft's format).
``nodes``/``edges`` may also be objects (their values are taken); unknown fields are dropped, as
Flowcraft's ``sanitizeBlueprint`` does. Every type problem raises :class:`BlueprintError` naming the
JSON path, e.g. ``nodes[3].config.maxRetries: expected an integer, got "3"``.

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
    default_id = id
    if isinstance(source, os.PathLike):
        path = Path(source)
        try:
            raw_bytes = path.read_bytes()
        except OSError as err:
            raise BlueprintError(f"cannot read blueprint file: {err.strerror or err}", str(path)) from err
        data = _parse_json(raw_bytes, where=str(path))
        if default_id is None and isinstance(data, Mapping) and not isinstance(data.get("id"), str):
            default_id = path.stem
    elif isinstance(source, (str, bytes)):
        data = _parse_json(source, where="")
    else:
        data = source
    return _build(data, id_override=id, default_id=default_id)


def _parse_json(text: str | bytes, *, where: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as err:
        prefix = f"{where}: " if where else ""
        raise BlueprintError(
            f"{prefix}malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}"
        ) from None


def describe(value: Any) -> str:
    """A short JSON-ish description of a value for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return orjson.dumps(shown).decode()
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "an array"
    return f"a {type(value).__name__}"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _fail(path: str, expected: str, value: Any) -> BlueprintError:
    return BlueprintError(f"expected {expected}, got {describe(value)}", path)


def _opt_str(obj: Mapping[str, Any], key: str, path: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _fail(_join(path, key), "a string", value)
    return value


def _req_str(obj: Mapping[str, Any], key: str, path: str) -> str:
    if key not in obj or obj[key] is None:
        raise BlueprintError("required field is missing", _join(path, key))
    value = obj[key]
    if not isinstance(value, str):
        raise _fail(_join(path, key), "a string", value)
    return value


def _opt_number(obj: Mapping[str, Any], key: str, path: str) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(_join(path, key), "a number", value)
    if value != value or value in (float("inf"), float("-inf")):
        raise _fail(_join(path, key), "a finite number", value)
    return float(value) if isinstance(value, float) else int(value)


def _opt_int(obj: Mapping[str, Any], key: str, path: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(_join(path, key), "an integer", value)
    if isinstance(value, float):
        if not value.is_integer():
            raise _fail(_join(path, key), "an integer", value)
        return int(value)
    return int(value)


def _collection(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    if value is None:
        return []
    if isinstance(value, Mapping):
        return list(value.values())
    if isinstance(value, (list, tuple)):
        return list(value)
    raise _fail(key, "an array or an object", value)


def _build(data: Any, *, id_override: str | None, default_id: str | None) -> Blueprint:
    if not isinstance(data, Mapping):
        raise BlueprintError(f"a blueprint must be a JSON object, got {describe(data)}")
    if id_override is not None:
        blueprint_id = id_override
    elif data.get("id") is None and default_id is not None:
        blueprint_id = default_id
    else:
        blueprint_id = _req_str(data, "id", "")
    nodes = tuple(_build_node(raw, f"nodes[{i}]") for i, raw in enumerate(_collection(data, "nodes")))
    edges = tuple(_build_edge(raw, f"edges[{i}]") for i, raw in enumerate(_collection(data, "edges")))
    metadata = data.get("metadata")
    if metadata is None:
        metadata = {}
    elif not isinstance(metadata, Mapping):
        raise _fail("metadata", "an object", metadata)
    else:
        metadata = dict(metadata)
        version = metadata.get("version")
        if version is not None and not isinstance(version, str):
            raise _fail("metadata.version", "a string", version)
        entries = metadata.get("cycleEntryPoints")
        if entries is not None and (
            not isinstance(entries, (list, tuple)) or not all(isinstance(x, str) for x in entries)
        ):
            raise _fail("metadata.cycleEntryPoints", "an array of strings", entries)
    return Blueprint(id=blueprint_id, nodes=nodes, edges=edges, metadata=metadata)


def _build_node(raw: Any, path: str) -> NodeDefinition:
    if not isinstance(raw, Mapping):
        raise _fail(path, "an object", raw)
    node_id = _req_str(raw, "id", path)
    uses = _req_str(raw, "uses", path)
    params = raw.get("params")
    if params is None:
        params = _EMPTY
    elif not isinstance(params, Mapping):
        raise _fail(f"{path}.params", "an object", params)
    inputs = raw.get("inputs")
    if inputs is not None and not isinstance(inputs, str):
        if not isinstance(inputs, Mapping):
            raise _fail(f"{path}.inputs", "a string or an object of strings", inputs)
        for key, value in inputs.items():
            if not isinstance(value, str):
                raise _fail(f"{path}.inputs.{key}", "a string", value)
        inputs = dict(inputs)
    config_raw = raw.get("config")
    if config_raw is None:
        config = _DEFAULT_CONFIG
    elif not isinstance(config_raw, Mapping):
        raise _fail(f"{path}.config", "an object", config_raw)
    else:
        cpath = _join(path, "config")
        config = NodeConfig(
            max_retries=_opt_int(config_raw, "maxRetries", cpath),
            retry_delay=_opt_number(config_raw, "retryDelay", cpath),
            backoff=_opt_str(config_raw, "backoff", cpath),
            timeout=_opt_number(config_raw, "timeout", cpath),
            fallback=_opt_str(config_raw, "fallback", cpath),
            join_strategy=_opt_str(config_raw, "joinStrategy", cpath),
        )
    return NodeDefinition(id=node_id, uses=uses, params=params, inputs=inputs, config=config)


def _build_edge(raw: Any, path: str) -> EdgeDefinition:
    if not isinstance(raw, Mapping):
        raise _fail(path, "an object", raw)
    return EdgeDefinition(
        source=_req_str(raw, "source", path),
        target=_req_str(raw, "target", path),
        action=_opt_str(raw, "action", path),
        condition=_opt_str(raw, "condition", path),
        transform=_opt_str(raw, "transform", path),
    )


def node_config_from(value: NodeConfig | Mapping[str, Any] | None, path: str = "config") -> NodeConfig:
    """A NodeConfig from a NodeConfig, or a mapping with Flowcraft (camelCase) or snake_case keys."""
    if value is None:
        return _DEFAULT_CONFIG
    if isinstance(value, NodeConfig):
        return value
    if not isinstance(value, Mapping):
        raise _fail(path, "an object", value)
    snake_to_camel = dict(_CONFIG_FIELDS)
    normalised = {snake_to_camel.get(k, k): v for k, v in value.items()}
    unknown = set(normalised) - set(snake_to_camel.values())
    if unknown:
        raise BlueprintError(f"unknown config field {sorted(unknown)[0]!r}", path)
    owner = path[: -len(".config")] if path.endswith(".config") else ""
    return _build_node({"id": "", "uses": "", "config": normalised}, owner).config
