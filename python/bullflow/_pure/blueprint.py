"""Pure-Python twin of ``bullflow._core.parse_blueprint`` (``rust_core/blueprint.rs``).

Same results, same errors, same messages: the tests run both on the same cases. Use it through
``bullflow._impl``, which picks one of the two.

JSON text is parsed with the standard library's :mod:`json` (what the Rust scanner mirrors), with
three rules of ours on top, which the Rust side applies too:

* ``bytes`` must be UTF-8 (one leading byte order mark is skipped);
* arrays and objects may nest at most :data:`MAX_DEPTH` levels deep;
* an integer with more digits than :func:`sys.get_int_max_str_digits` allows becomes a float
  (``int()`` would refuse it).

Malformed text is ``BlueprintError("malformed JSON at line L, column C: <what>")``. ``L`` and
``C`` are computed the same way in both implementations from the character where parsing
stopped; ``<what>`` is the :mod:`json` module's explanation here, and the Rust scanner's (which
copies Python 3.11's wording) there: the one part of a message that may differ between the two.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Mapping
from typing import Any

from ..exceptions import BlueprintError

__all__ = ["MAX_DEPTH", "describe", "parse_blueprint"]

MAX_DEPTH = 512
"""The deepest nesting of arrays and objects accepted in JSON text (the document is level 1)."""

_TOO_DEEP = f"nested more than {MAX_DEPTH} levels deep"

# For the nesting checks.
_ONLY_QUOTES_AND_BRACKETS = bytes(b for b in range(256) if b not in b'"[]{}')
_QUOTED = re.compile(rb'"[^"]*"')
_BRACKET_OR_QUOTE = re.compile(r'["\[\]{}]')
_STRING_REST = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def parse_blueprint(
    source: str | bytes | Mapping[str, Any],
    id: str | None = None,
    default_id: str | None = None,
) -> dict[str, Any]:
    """Parses and checks a Flowcraft blueprint; returns it sanitised, as plain data.

    ``source`` is JSON text (``str``, or UTF-8 ``bytes``) or an already decoded mapping. The
    result is ``{"id", "nodes", "edges", "metadata"}`` with only the known fields. ``id``
    overrides the blueprint id; ``default_id`` is used when the document has no (or a null) id.
    Raises ``BlueprintError`` naming the JSON path of the first problem.
    """
    if isinstance(source, str):
        data: Any = _loads(source)
    elif isinstance(source, bytes):
        data = _loads(_decode(source))
    else:
        data = source
    return _sanitise(data, id, default_id)


# ---- JSON text -------------------------------------------------------------------------------------


def _malformed(text: str, pos: int, what: str) -> BlueprintError:
    # Like json.JSONDecodeError's lineno and colno.
    line = text.count("\n", 0, pos) + 1
    column = pos - text.rfind("\n", 0, pos)
    return BlueprintError(f"malformed JSON at line {line}, column {column}: {what}")


def _decode(data: bytes) -> str:
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        good = data[: err.start].decode("utf-8")
        raise _malformed(good, len(good), "invalid UTF-8") from None


def _int_or_float(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:  # more digits than sys.get_int_max_str_digits()
        return float(text)


def _loads(text: str) -> Any:
    try:
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            raise
        except ValueError:  # an integer too long for int(): parse again, making it a float
            data = json.loads(text, parse_int=_int_or_float)
    except json.JSONDecodeError as err:
        deep = _too_deep_at(text, err.pos)
        if deep is not None:
            raise _malformed(text, deep, _TOO_DEEP) from None
        raise _malformed(text, err.pos, err.msg) from None
    except RecursionError:
        deep = _too_deep_at(text, len(text))
        if deep is None:  # the caller's stack is deep already: a real recursion error
            raise
        raise _malformed(text, deep, _TOO_DEEP) from None
    if _maybe_deeper_than_limit(text):
        deep = _too_deep_at(text, len(text))
        if deep is not None:
            raise _malformed(text, deep, _TOO_DEEP)
    return data


def _maybe_deeper_than_limit(text: str) -> bool:
    """False if valid JSON ``text`` nests at most MAX_DEPTH deep; True if it may nest deeper
    (then :func:`_too_deep_at` tells). Fast: C-speed string methods only."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False
    # Drop escaped backslashes, then escaped quotes; keep only quotes and brackets; drop the
    # strings (now runs of brackets between quotes): what is left is the shape of the document.
    # Removing two adjacent quotes first (an empty string, or the end of one string and the start
    # of the next, which only merges two strings) keeps the brackets outside strings as they are.
    data = text.encode("utf-8", "surrogatepass").replace(b"\\\\", b"").replace(b'\\"', b"")
    kept = data.translate(None, _ONLY_QUOTES_AND_BRACKETS).replace(b'""', b"")
    shape = _QUOTED.sub(b"", kept)
    # Each replace removes at most one level (the innermost arrays, or the innermost objects).
    for i in range(MAX_DEPTH):
        shape = shape.replace(b"[]" if i % 2 else b"{}", b"")
        if not shape:
            return False
    return True


def _too_deep_at(text: str, end: int) -> int | None:
    """The offset of the first bracket before ``end`` that opens level MAX_DEPTH + 1, in JSON
    text that is valid up to ``end``; None if there is none."""
    if text.count("[", 0, end) + text.count("{", 0, end) <= MAX_DEPTH:
        return None
    depth = 0
    i = 0
    while True:
        match = _BRACKET_OR_QUOTE.search(text, i, end)
        if match is None:
            return None
        char = match.group()
        i = match.end()
        if char == '"':
            rest = _STRING_REST.match(text, i, end)
            if rest is None:  # the string runs to the end
                return None
            i = rest.end()
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return match.start()
        else:
            depth -= 1


# ---- messages --------------------------------------------------------------------------------------


def describe(value: Any) -> str:
    """A short JSON-ish description of a value for error messages: ``null``, ``true``,
    ``"text"`` (cut to 37 characters plus ``...`` beyond 40), ``2.5``, ``an object``,
    ``an array``, ``a <type name>``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return json.dumps(shown, ensure_ascii=False)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "an array"
    return f"a {type(value).__name__}"


def _fail(path: str, expected: str, value: Any) -> BlueprintError:
    return BlueprintError(f"expected {expected}, got {describe(value)}", path)


# ---- validation ------------------------------------------------------------------------------------
# Paths are made only for an error: ``where`` is the path of the object, ``key`` the field's name.


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _req_str(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if isinstance(value, str):
        return value
    if value is None:
        raise BlueprintError("required field is missing", _at(where, key))
    raise _fail(_at(where, key), "a string", value)


def _opt_str(obj: Mapping[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise _fail(_at(where, key), "a string", value)
    return value


def _opt_number(obj: Mapping[str, Any], key: str, where: str) -> int | float | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(_at(where, key), "a number", value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise _fail(_at(where, key), "a finite number", value)
        return float(value)
    return int(value)


def _opt_int(obj: Mapping[str, Any], key: str, where: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(_at(where, key), "an integer", value)
    if isinstance(value, float) and not value.is_integer():
        raise _fail(_at(where, key), "an integer", value)
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


def _sanitise(data: Any, id: str | None, default_id: str | None) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise BlueprintError(f"a blueprint must be a JSON object, got {describe(data)}")
    if id is not None:
        blueprint_id = id
    elif default_id is not None and data.get("id") is None:
        blueprint_id = default_id
    else:
        blueprint_id = _req_str(data, "id", "")
    nodes = [_node(raw, i) for i, raw in enumerate(_collection(data, "nodes"))]
    edges = [_edge(raw, i) for i, raw in enumerate(_collection(data, "edges"))]
    return {"id": blueprint_id, "nodes": nodes, "edges": edges, "metadata": _metadata(data.get("metadata"))}


def _node(raw: Any, index: int) -> dict[str, Any]:
    where = f"nodes[{index}]"
    if not isinstance(raw, Mapping):
        raise _fail(where, "an object", raw)
    node: dict[str, Any] = {"id": _req_str(raw, "id", where), "uses": _req_str(raw, "uses", where)}
    params = raw.get("params")
    if params is not None:
        if not isinstance(params, Mapping):
            raise _fail(f"{where}.params", "an object", params)
        node["params"] = params
    inputs = raw.get("inputs")
    if inputs is not None:
        if not isinstance(inputs, str):
            if not isinstance(inputs, Mapping):
                raise _fail(f"{where}.inputs", "a string or an object of strings", inputs)
            pairs = list(inputs.items())
            for key, value in pairs:
                if not isinstance(value, str):
                    raise _fail(f"{where}.inputs.{key}", "a string", value)
            inputs = dict(pairs)
        node["inputs"] = inputs
    config = raw.get("config")
    if config is not None:
        if not isinstance(config, Mapping):
            raise _fail(f"{where}.config", "an object", config)
        node["config"] = _config(config, f"{where}.config")
    return node


def _config(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    checked = (
        ("maxRetries", _opt_int(raw, "maxRetries", where)),
        ("retryDelay", _opt_number(raw, "retryDelay", where)),
        ("backoff", _opt_str(raw, "backoff", where)),
        ("timeout", _opt_number(raw, "timeout", where)),
        ("fallback", _opt_str(raw, "fallback", where)),
        ("joinStrategy", _opt_str(raw, "joinStrategy", where)),
    )
    return {key: value for key, value in checked if value is not None}


def _edge(raw: Any, index: int) -> dict[str, Any]:
    where = f"edges[{index}]"
    if not isinstance(raw, Mapping):
        raise _fail(where, "an object", raw)
    edge: dict[str, Any] = {
        "source": _req_str(raw, "source", where),
        "target": _req_str(raw, "target", where),
    }
    for key in ("action", "condition", "transform"):
        value = _opt_str(raw, key, where)
        if value is not None:
            edge[key] = value
    return edge


def _metadata(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise _fail("metadata", "an object", raw)
    metadata = dict(raw)
    _opt_str(metadata, "version", "metadata")
    entries = metadata.get("cycleEntryPoints")
    if entries is not None and (
        not isinstance(entries, (list, tuple)) or not all(isinstance(x, str) for x in entries)
    ):
        raise _fail("metadata.cycleEntryPoints", "an array of strings", entries)
    return metadata
