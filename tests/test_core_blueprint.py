"""parse_blueprint in the Rust extension (bullflow._core) and its pure-Python twin (bullflow._pure):
the golden cases, agreement on random and mutated documents (as JSON text, bytes and mappings),
inputs that only Python objects can express, fuzzing for crashes, and the loader built on it."""

from __future__ import annotations

import copy
import enum
import importlib
import json
import os
import pickle
import random
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bullflow._core as core
import bullflow._pure as pure
from bullflow.blueprint import Blueprint, NodeConfig, _build_node, load_blueprint, node_config_from
from bullflow.exceptions import BlueprintError

GOLDEN: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "data" / "blueprint_golden.json").read_text("utf-8")
)
IMPLS = {"rust": core, "python": pure}
MALFORMED = re.compile(r"malformed JSON at line \d+, column \d+: ")


@pytest.fixture(params=list(IMPLS))
def impl(request: pytest.FixtureRequest) -> ModuleType:
    return IMPLS[request.param]


def outcome(impl: ModuleType, source: Any, **kwargs: Any) -> tuple[str, str]:
    """What ``parse_blueprint`` does, comparable across implementations: ``("ok", repr(result))``
    (repr tells int from float from bool, shows key order, and equates NaNs) or
    ``("error", message)``. For malformed JSON only the line and column count: the explanation
    after them is the JSON parser's own and may differ between the two."""
    try:
        result = impl.parse_blueprint(source, **kwargs)
    except BlueprintError as err:
        assert type(err) is BlueprintError
        message = str(err)
        assert message == (f"{err.path}: {err.problem}" if err.path else err.problem)
        malformed = MALFORMED.match(message)
        if malformed:
            assert err.path == ""
            return ("error", malformed.group())
        return ("error", message)
    assert type(result) is dict
    assert list(result) == ["id", "nodes", "edges", "metadata"]
    return ("ok", repr(result))


def assert_agree(source: Any, **kwargs: Any) -> tuple[str, str]:
    expected = outcome(pure, source, **kwargs)
    assert outcome(core, source, **kwargs) == expected, f"source: {source!r:.500}"
    return expected


def strictly_equal(got: Any, want: Any) -> bool:
    """Equal, with the same types (an int is not a float) and the same key order."""
    if type(got) is not type(want):
        return False
    if isinstance(want, dict):
        return list(got) == list(want) and all(strictly_equal(got[k], want[k]) for k in want)
    if isinstance(want, list):
        return len(got) == len(want) and all(map(strictly_equal, got, want))
    return bool(got == want)


# ---- golden cases ----------------------------------------------------------------------------------


def test_golden_file_covers_the_spec() -> None:
    names = [case["name"] for case in GOLDEN]
    assert len(names) == len(set(names))
    assert len(GOLDEN) >= 100
    rows = [name for name in names if name.startswith("test_blueprint row ")]
    assert len(rows) == 20  # every row of test_blueprint.py's test_bad_input_names_the_path...
    for case in GOLDEN:
        outcomes = [key for key in ("expected", "error", "error_prefix") if key in case]
        assert len(outcomes) == 1, case["name"]
        assert set(case) - {"expected", "error", "error_prefix"} == {
            "name",
            "text",
            "object",
            "id",
            "default_id",
        }
    for needle in (
        "1e+16",
        "1e-05",
        "got 2.5",
        "got 0.1",
        "1000-char",
        "unicode",
        "empty",
        "as objects",
        "null",
    ):
        assert any(needle in case["name"] or needle in case.get("error", "") for case in GOLDEN), needle


def _check_golden(impl: ModuleType, case: dict[str, Any], source: Any) -> None:
    kwargs = {"id": case["id"], "default_id": case["default_id"]}
    if "expected" in case:
        result = impl.parse_blueprint(source, **kwargs)
        assert strictly_equal(result, case["expected"]), result
        return
    with pytest.raises(BlueprintError) as info:
        impl.parse_blueprint(source, **kwargs)
    if "error" in case:
        assert str(info.value) == case["error"]
    else:
        # The explanation after "line L, column C: " is the JSON parser's own (see outcome()).
        assert str(info.value).startswith(case["error_prefix"])
        assert info.value.path == ""


@pytest.mark.parametrize("case", GOLDEN, ids=[case["name"] for case in GOLDEN])
def test_golden_text(impl: ModuleType, case: dict[str, Any]) -> None:
    _check_golden(impl, case, case["text"])


@pytest.mark.parametrize(
    "case",
    [case for case in GOLDEN if not case["text"].startswith("\ufeff")],
    ids=[case["name"] for case in GOLDEN if not case["text"].startswith("\ufeff")],
)
def test_golden_bytes(impl: ModuleType, case: dict[str, Any]) -> None:
    _check_golden(impl, case, case["text"].encode("utf-8"))


@pytest.mark.parametrize(
    "case",
    [case for case in GOLDEN if case["object"] and "error_prefix" not in case],
    ids=[case["name"] for case in GOLDEN if case["object"] and "error_prefix" not in case],
)
def test_golden_mapping(impl: ModuleType, case: dict[str, Any]) -> None:
    _check_golden(impl, case, json.loads(case["text"]))


@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="the Rust scanner words errors like Python 3.11")
@pytest.mark.parametrize(
    "case",
    [case for case in GOLDEN if "error_prefix" in case],
    ids=[case["name"] for case in GOLDEN if "error_prefix" in case],
)
def test_malformed_json_explanations_match_python_311(case: dict[str, Any]) -> None:
    messages = []
    for module in (core, pure):
        with pytest.raises(BlueprintError) as info:
            module.parse_blueprint(case["text"])
        messages.append(str(info.value))
    assert messages[0] == messages[1]


# ---- arguments and results --------------------------------------------------------------------------


def test_module_exports() -> None:
    assert "parse_blueprint" in pure.__all__
    assert pure.parse_blueprint.__module__ == "bullflow._pure.blueprint"
    assert core.parse_blueprint.__name__ == "parse_blueprint"


def test_keyword_arguments(impl: ModuleType) -> None:
    assert impl.parse_blueprint(source={"id": "a"}, id=None, default_id=None)["id"] == "a"
    assert impl.parse_blueprint("{}", None, "d")["id"] == "d"
    with pytest.raises(TypeError):
        impl.parse_blueprint()
    with pytest.raises(TypeError):
        impl.parse_blueprint("{}", "a", "b", "c")


def test_given_ids_are_returned_as_given(impl: ModuleType) -> None:
    class Name(str):
        pass

    given = Name("given")
    assert impl.parse_blueprint({"id": 1}, id=given)["id"] is given
    default = Name("default")
    assert impl.parse_blueprint({"id": None}, default_id=default)["id"] is default


def test_mapping_values_are_passed_through(impl: ModuleType) -> None:
    params = {"deep": [{"x": object()}]}
    inputs = {"k": "v"}
    metadata = {"version": "1", "extra": [1]}
    raw: dict[str, Any] = {
        "id": "m",
        "nodes": [{"id": "A", "uses": "a", "params": params, "inputs": inputs}],
        "metadata": metadata,
    }
    result = impl.parse_blueprint(raw)
    node = result["nodes"][0]
    assert node["params"] is params
    assert node["inputs"] == inputs and node["inputs"] is not inputs
    assert result["metadata"] == metadata and result["metadata"] is not metadata
    assert result["metadata"]["extra"] is metadata["extra"]
    assert raw["nodes"][0]["params"] is params  # the input is not changed


def test_results_are_fresh(impl: ModuleType) -> None:
    text = '{"id": "f", "nodes": [{"id": "A", "uses": "a", "params": {"p": [1]}}], "metadata": {"m": {}}}'
    first = impl.parse_blueprint(text)
    first["nodes"][0]["params"]["p"].append(2)
    first["metadata"]["m"]["x"] = 1
    assert impl.parse_blueprint(text) == {
        "id": "f",
        "nodes": [{"id": "A", "uses": "a", "params": {"p": [1]}}],
        "edges": [],
        "metadata": {"m": {}},
    }


def test_numbers_are_normalised(impl: ModuleType) -> None:
    class Count(enum.IntEnum):
        THREE = 3

    class Millis(float):
        pass

    config = {"maxRetries": Count.THREE, "retryDelay": Millis(2.5), "timeout": 7.0}
    got = impl.parse_blueprint({"id": "n", "nodes": [{"id": "A", "uses": "a", "config": config}]})
    out = got["nodes"][0]["config"]
    assert out == {"maxRetries": 3, "retryDelay": 2.5, "timeout": 7.0}
    assert [type(v) for v in out.values()] == [int, float, float]
    big = impl.parse_blueprint(
        {"id": "n", "nodes": [{"id": "A", "uses": "a", "config": {"maxRetries": 1e300}}]}
    )
    assert big["nodes"][0]["config"]["maxRetries"] == int(1e300)


class _Mapping(Mapping[Any, Any]):
    """A Mapping that is not a dict."""

    def __init__(self, data: dict[Any, Any]) -> None:
        self._data = data

    def __getitem__(self, key: Any) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


class _Str(str):
    pass


class _List(list[Any]):
    pass


PYTHON_ONLY_INPUTS: list[Any] = [
    _Mapping(
        {"id": "m", "nodes": _Mapping({"a": _Mapping({"id": "a", "uses": "u", "params": _Mapping({})})})}
    ),
    _Mapping({"id": "m", "nodes": (_Mapping({"id": "a", "uses": 5}),)}),
    {"id": "t", "nodes": ({"id": "a", "uses": "u"},), "edges": ({"source": "a", "target": "a"},)},
    {"id": "t", "nodes": _List([{"id": "a", "uses": "u"}])},
    {"id": "t", "metadata": {"cycleEntryPoints": ("a", _Str("b"))}},
    {"id": "t", "metadata": {"cycleEntryPoints": ("a", b"b")}},
    {"id": "t", "metadata": _Mapping({"version": 1})},
    {"id": _Str("x" * 60)},
    {"id": object()},
    {"id": {1, 2}},
    {"id": b"bytes"},
    {"id": 10**30},
    {"id": -(2**70)},
    {"id": True},
    {"id": 1.5, "nodes": 1},
    {"id": "x", "nodes": [{"id": "a", "uses": "u", "inputs": {1: "x", (2, 3): "y"}}]},
    {"id": "x", "nodes": [{"id": "a", "uses": "u", "inputs": {1: 2}}]},
    {"id": "x", "nodes": [{"id": "a", "uses": "u", "inputs": {"\ud800": 2}}]},
    {"id": "x", "nodes": [{"id": "a", "uses": "u", "inputs": {"k": "\udfff" * 50}}]},
    {"id": "x", "nodes": [{"id": "a", "uses": "u", "config": {"timeout": "\ud800é" * 30}}]},
    {"id": "\ud800", "nodes": [{"id": "\udc00", "uses": "u"}]},
    {"id": "x", "nodes": [{"id": "a", "uses": "u", "config": {"maxRetries": float("nan")}}]},
    {"id": "x", "nodes": [{"id": "a", "uses": "u", "config": {"timeout": float("-inf")}}]},
    {"id": "x", "nodes": [{"id": "a", "uses": "u", "config": {"timeout": 10**400}}]},
    None,
    5,
    2.5,
    [],
    (),
    {1, 2},
    bytearray(b"{}"),
    memoryview(b"{}"),
    _Str('{"id": "from a str subclass"}'),
    '{"id": "a\ud800b"}',
    "\ud800",
    b"\xef\xbb\xbf{}",
    b"\xef\xbb\xbf\xef\xbb\xbf{}",
    b'{"id": "\xff"}',
    b'{"id":\n "\xc3\xa9\xed\xa0\x80"}',
    b"\xff\xfe{\x00}\x00",
]


@pytest.mark.parametrize("source", PYTHON_ONLY_INPUTS, ids=range(len(PYTHON_ONLY_INPUTS)))
def test_impls_agree_on_python_objects(source: Any) -> None:
    assert_agree(source)
    assert_agree(source, default_id="d")


def test_surrogates_survive(impl: ModuleType) -> None:
    got = impl.parse_blueprint('{"id": "\\ud800", "nodes": [{"id": "a\udfffb", "uses": "\\udc00\\ud800"}]}')
    assert got["id"] == "\ud800"
    assert got["nodes"][0] == {"id": "a\udfffb", "uses": "\udc00\ud800"}
    with pytest.raises(BlueprintError) as info:
        impl.parse_blueprint('{"id": "x", "nodes": [{"id": "a", "uses": "u", "inputs": {"\\ud800": 1}}]}')
    assert info.value.path == "nodes[0].inputs.\ud800"
    with pytest.raises(BlueprintError) as info:
        impl.parse_blueprint({"id": "\ud800" * 3, "nodes": 1})
    assert info.value.problem == "expected an array or an object, got 1"


def test_integer_digit_limit(impl: ModuleType) -> None:
    limit = sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else 0
    if not limit:
        pytest.skip("no int max str digits limit")
    ok = "7" * limit
    got = impl.parse_blueprint('{"id": "x", "params": 1, "metadata": {"n": ' + ok + "}}")
    assert got["metadata"]["n"] == int(ok)
    too_long = "7" * (limit + 1)
    got = impl.parse_blueprint('{"id": "x", "metadata": {"n": -' + too_long + "}}")
    assert got["metadata"]["n"] == float("-inf")


def test_bytes_must_be_utf8(impl: ModuleType) -> None:
    with pytest.raises(BlueprintError) as info:
        impl.parse_blueprint(b'{"id":\n  "\xc3\xa9\xc3"}')
    assert str(info.value).startswith("malformed JSON at line 2, column 5: ")
    assert impl.parse_blueprint(b'\xef\xbb\xbf{"id": "bom"}')["id"] == "bom"


def test_nesting_limit(impl: ModuleType) -> None:
    assert impl.parse_blueprint('{"id": "x", "params": ' + "[" * 511 + "]" * 511 + "}")["id"] == "x"
    for text in ("[" * 513 + "]" * 513, "[" * 100_000, "[" * 513 + "x"):
        with pytest.raises(BlueprintError) as info:
            impl.parse_blueprint(text)
        assert str(info.value).startswith("malformed JSON at line 1, column 513: ")
    # Brackets in strings do not count.
    text = '{"id": "x", "metadata": {"s": "' + "[" * 1000 + '"}}'
    assert impl.parse_blueprint(text)["metadata"]["s"] == "[" * 1000


def test_trailing_commas(impl: ModuleType) -> None:
    # Python 3.13 reports a trailing comma at the comma, older versions at the bracket after it;
    # the Rust scanner follows the running Python.
    new = sys.version_info >= (3, 13)
    for text, comma, bracket in [('{"id": "x", "nodes": [1 , ]}', 25, 27), ('{"id": "x",\n }', 11, 2)]:
        with pytest.raises(BlueprintError) as info:
            impl.parse_blueprint(text)
        line = 1 if new or "\n" not in text else 2
        assert str(info.value).startswith(
            f"malformed JSON at line {line}, column {comma if new else bracket}: "
        )


TRICKY_STRINGS = st.text(st.sampled_from('[]{}"\\/nu0a'), max_size=6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(490, 530), st.lists(TRICKY_STRINGS, min_size=1, max_size=8), st.integers(0, 2**32 - 1))
def test_impls_agree_around_the_nesting_limit(depth: int, strings: list[str], seed: int) -> None:
    """Documents nested about MAX_DEPTH deep, with brackets, quotes and backslashes in strings."""
    rnd = random.Random(seed)
    value: Any = rnd.choice(strings)
    for level in range(depth - 2):
        if rnd.random() < 0.5:
            value = [rnd.choice(strings), value] if rnd.random() < 0.5 else [value]
        else:
            value = {rnd.choice(strings): rnd.choice(strings), f"k{level}": value}
    doc = {"id": "deep", "params": [rnd.choice(strings)] * 600, "metadata": {"v": value}}
    text = json.dumps(doc, ensure_ascii=rnd.random() < 0.5)
    assert_agree(text)
    if rnd.random() < 0.5:  # and with an error somewhere
        at = rnd.randrange(len(text))
        assert_agree(text[:at] + rnd.choice(["x", ",", "]", '"']) + text[at:])


def test_errors_pickle(impl: ModuleType) -> None:
    with pytest.raises(BlueprintError) as info:
        impl.parse_blueprint({"id": "x", "nodes": [{"id": 1}]})
    again = pickle.loads(pickle.dumps(info.value))
    assert (again.path, again.problem) == ("nodes[0].id", "expected a string, got 1")


def test_exceptions_from_the_mapping_pass_through(impl: ModuleType) -> None:
    class Broken(_Mapping):
        def get(self, key: Any, default: Any = None) -> Any:
            raise KeyError("broken get")

    with pytest.raises(KeyError, match="broken get"):
        impl.parse_blueprint(Broken({"id": "x"}))


# ---- large inputs ------------------------------------------------------------------------------------


def _big(n: int) -> dict[str, Any]:
    return {
        "id": "big",
        "nodes": [
            {
                "id": f"n{i}",
                "uses": "work",
                "params": {"i": i, "label": f"node {i}"},
                "config": {"maxRetries": 3, "timeout": 1500.5},
                "_sourceLocation": {"file": "f.ts", "line": i},
            }
            for i in range(n)
        ],
        "edges": [{"source": f"n{i}", "target": f"n{i + 1}", "condition": "ok"} for i in range(n - 1)],
        "metadata": {"version": "1"},
    }


def test_large_blueprint() -> None:
    doc = _big(20_000)
    text = json.dumps(doc)
    expected = pure.parse_blueprint(text)
    assert len(expected["nodes"]) == 20_000 and "_sourceLocation" not in expected["nodes"][0]
    assert core.parse_blueprint(text) == expected
    assert core.parse_blueprint(text.encode()) == expected
    assert core.parse_blueprint(doc) == expected == pure.parse_blueprint(doc)


@pytest.mark.slow
def test_100k_node_blueprint() -> None:
    doc = _big(100_000)
    text = json.dumps(doc)
    expected = pure.parse_blueprint(text)
    assert core.parse_blueprint(text) == expected
    assert core.parse_blueprint(doc) == expected
    broken = text[:-3] + "1}"  # metadata.version is last and no longer a string
    assert_agree(broken)


# ---- both implementations agree on random documents ----------------------------------------------

SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
TEXT = st.one_of(
    st.text(max_size=8),
    st.sampled_from(["", " ", "a", "é", "节点🚀", "node.sub", "a" * 1000, "x" * 41, 'q"\\\n\t\x01']),
    st.text(st.one_of(st.characters(), SURROGATES), max_size=4),
)
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(),
    st.sampled_from([0.0, -0.0, 2.5, 1e16, 1e-05, 0.1, 3.0, 1e300, 1e-300]),
    TEXT,
)
VALUES = st.recursive(
    LEAVES,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=12,
)
NODE_IDS = st.sampled_from(["A", "B", "C", "", "é", "节点🚀", "x" * 1000])


@st.composite
def nodes(draw: st.DrawFn) -> dict[str, Any]:
    node: dict[str, Any] = {"id": draw(NODE_IDS), "uses": draw(st.sampled_from(["fn", "wait", "subflow"]))}
    if draw(st.booleans()):
        node["params"] = draw(st.dictionaries(TEXT, VALUES, max_size=3))
    if draw(st.booleans()):
        node["inputs"] = draw(st.one_of(TEXT, st.dictionaries(TEXT, TEXT, max_size=3)))
    if draw(st.booleans()):
        fields = {
            "maxRetries": st.one_of(st.integers(0, 10), st.sampled_from([3.0, 1e300, 2.5])),
            "retryDelay": st.one_of(st.integers(0, 10_000), st.floats(0, 1e6)),
            "backoff": st.sampled_from(["fixed", "exponential"]),
            "timeout": st.one_of(st.integers(0, 10_000), st.floats(0, 1e6)),
            "fallback": NODE_IDS,
            "joinStrategy": st.sampled_from(["all", "any"]),
            "unknown": VALUES,
        }
        keys = draw(st.lists(st.sampled_from(list(fields)), unique=True))
        node["config"] = {key: draw(fields[key]) for key in keys}
    if draw(st.booleans()):
        node["_sourceLocation"] = {"file": "a.ts", "line": 1, "column": 2}
    return node


@st.composite
def edges(draw: st.DrawFn) -> dict[str, Any]:
    edge: dict[str, Any] = {"source": draw(NODE_IDS), "target": draw(NODE_IDS)}
    for key in ("action", "condition", "transform"):
        if draw(st.booleans()):
            edge[key] = draw(TEXT)
    return edge


def _slots(value: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) in a document, the document's own fields included."""
    found: list[tuple[Any, Any]] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                found.append((item, key))
                stack.append(child)
        elif isinstance(item, list):
            for i, child in enumerate(item):
                found.append((item, i))
                stack.append(child)
    return found


@st.composite
def blueprints(draw: st.DrawFn) -> Any:
    """Blueprint-like documents: mostly valid, some with values of the wrong type at random
    places, missing fields, nulls, nodes and edges as objects."""
    doc: dict[str, Any] = {"id": draw(st.one_of(NODE_IDS, TEXT))}
    node_list = draw(st.lists(nodes(), max_size=5))
    doc["nodes"] = {f"k{i}": n for i, n in enumerate(node_list)} if draw(st.booleans()) else node_list
    if draw(st.booleans()):
        edge_list = draw(st.lists(edges(), max_size=4))
        doc["edges"] = {f"e{i}": e for i, e in enumerate(edge_list)} if draw(st.booleans()) else edge_list
    if draw(st.booleans()):
        doc["metadata"] = {
            "version": draw(st.sampled_from(["1", "2.0"])),
            "cycleEntryPoints": draw(st.lists(NODE_IDS, max_size=2)),
            "extra": draw(VALUES),
        }
    for _ in range(draw(st.integers(0, 3))):
        slots = _slots(doc)
        if not slots:
            break
        container, key = draw(st.sampled_from(slots))
        action = draw(st.sampled_from(["replace", "null", "delete"]))
        if action == "delete" and isinstance(container, dict):
            del container[key]
        else:
            container[key] = None if action == "null" else draw(VALUES)
    if draw(st.integers(0, 20)):
        return doc
    return draw(VALUES)


def _check_document(doc: Any, kwargs: dict[str, Any], ensure_ascii: bool) -> None:
    text = json.dumps(doc, ensure_ascii=ensure_ascii)
    from_text = assert_agree(text, **kwargs)
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate written as is
        pass
    else:
        assert assert_agree(data, **kwargs) == from_text
    assert_agree(copy.deepcopy(doc), **kwargs)
    # The decoded text gives what the text gives (a str would be read as JSON text itself). Not
    # always the same as `doc`: "\\ud800\\udc00" decodes to one character, not two.
    decoded = json.loads(text)
    if not isinstance(decoded, str):
        assert assert_agree(decoded, **kwargs) == from_text


ID_ARGUMENTS = st.sampled_from([{}, {"id": "given"}, {"default_id": "file"}, {"id": "", "default_id": ""}])


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(blueprints(), ID_ARGUMENTS, st.booleans())
def test_impls_agree_on_blueprints(doc: Any, kwargs: dict[str, Any], ensure_ascii: bool) -> None:
    _check_document(doc, kwargs, ensure_ascii)


JSON_SNIPPETS = st.sampled_from(
    [
        *'{}[],:"\\ \n\t0123456789-+.eE',
        *["true", "false", "null", "NaN", "Infinity", "-Infinity", "\\u", "\\ud800", "\\udc00", "é", "😀"],
        *['"id"', '"nodes"', '"uses"', '"config"', '"maxRetries"', '"x"', "\x00", "\x1f", "\ud800", "\ufeff"],
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(JSON_SNIPPETS, max_size=40), st.booleans())
def test_impls_agree_on_json_fragments(parts: list[str], wrapped: bool) -> None:
    text = "".join(parts)
    if wrapped:
        text = '{"id": "x", "nodes": [{"id": "a", "uses": "u", "params": ' + text + "}]}"
    assert_agree(text)
    try:
        assert_agree(text.encode("utf-8"))
    except UnicodeEncodeError:
        pass


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blueprints(), st.data())
def test_impls_agree_on_mutated_text(doc: Any, data: st.DataObject) -> None:
    text = json.dumps(doc, ensure_ascii=False)
    chars = list(text)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(chars)))
        how = data.draw(st.sampled_from(["insert", "delete", "cut"]))
        if how == "insert":
            chars.insert(at, data.draw(JSON_SNIPPETS))
        elif how == "delete" and at < len(chars):
            del chars[at]
        elif how == "cut":
            del chars[at:]
    assert_agree("".join(chars))


@pytest.mark.slow
@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.integers(0, 2**32 - 1))
def test_impls_agree_on_10k_node_blueprints(seed: int) -> None:
    rnd = random.Random(seed)
    doc = _big(10_000)
    doc["nodes"] = (
        {f"k{i}": node for i, node in enumerate(doc["nodes"])} if rnd.random() < 0.5 else doc["nodes"]
    )
    slots = _slots(doc)
    for _ in range(rnd.randint(0, 2)):
        container, key = rnd.choice(slots)
        container[key] = rnd.choice([None, 1, 2.5, "s", [], {}, True])
    _check_document(doc, {}, ensure_ascii=rnd.random() < 0.5)


# ---- never a crash: fuzzing the Rust parser ----------------------------------------------------


def _random_value(rnd: random.Random, depth: int = 0) -> Any:
    roll = rnd.random()
    if depth > 3 or roll < 0.5:
        return rnd.choice(
            [
                None,
                True,
                False,
                0,
                -1,
                7,
                2**64,
                2.5,
                -0.0,
                1e16,
                1e-05,
                float("inf"),
                float("nan"),
                "",
                "s",
                "é\ud800",
            ]
        )
    if roll < 0.75:
        return [_random_value(rnd, depth + 1) for _ in range(rnd.randint(0, 3))]
    return {
        rnd.choice(["id", "nodes", "edges", "uses", "config", "k"]): _random_value(rnd, depth + 1)
        for _ in range(3)
    }


def _random_blueprint(rnd: random.Random) -> Any:
    doc: dict[str, Any] = {
        "id": rnd.choice(["bp", "", "é", 5]),
        "nodes": [
            {
                "id": f"n{i}",
                "uses": "u",
                "params": {"p": _random_value(rnd)},
                "inputs": rnd.choice(["x", {"k": "v"}, {"k": 1}]),
                "config": {
                    "maxRetries": rnd.choice([1, 2.0, 2.5, "3"]),
                    "timeout": rnd.choice([1, 1e400, None]),
                },
            }
            for i in range(rnd.randint(0, 4))
        ],
        "edges": {"e": {"source": "n0", "target": "n1", "condition": rnd.choice(["ok", 1])}},
        "metadata": {"version": rnd.choice(["1", 1]), "cycleEntryPoints": ["n0"]},
    }
    return doc if rnd.random() < 0.9 else _random_value(rnd)


def _fuzz_inputs(rnd: random.Random) -> Iterator[Any]:
    """Random bytes, truncations and byte flips of valid documents, random JSON values."""
    significant = b'{}[],:"\\ 0123456789-+.eEuntrfalsNI\x00\x1f\xff\xed\xa0\x80\xc3\xef\xbb\xbf'
    while True:
        roll = rnd.random()
        if roll < 0.15:
            raw = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 64)))
            yield raw
            yield raw.decode("latin-1")
            continue
        doc = _random_blueprint(rnd)
        try:
            data = json.dumps(doc, ensure_ascii=rnd.random() < 0.5).encode("utf-8", "surrogatepass")
        except ValueError:
            continue
        if roll < 0.3:
            yield doc
            yield data
        elif roll < 0.55:
            yield data[: rnd.randint(0, len(data))]
        else:
            mutated = bytearray(data)
            for _ in range(rnd.randint(1, 4)):
                at = rnd.randrange(len(mutated) + 1)
                how = rnd.random()
                if how < 0.4 and at < len(mutated):
                    mutated[at] = rnd.choice(significant) if rnd.random() < 0.7 else rnd.getrandbits(8)
                elif how < 0.7:
                    mutated.insert(at, rnd.choice(significant))
                elif at < len(mutated):
                    del mutated[at]
            yield bytes(mutated)
            yield bytes(mutated).decode("utf-8", "surrogateescape" if rnd.random() < 0.5 else "replace")


def _fuzz(count: int, seed: int, compare: Callable[[Any], object]) -> None:
    rnd = random.Random(seed)
    fed = 0
    for source in _fuzz_inputs(rnd):
        try:
            result = core.parse_blueprint(source)
        except BlueprintError:
            pass
        else:
            assert type(result) is dict
        compare(source)
        fed += 1
        if fed >= count:
            return


def test_fuzz_rust_parser_quick() -> None:
    _fuzz(5_000, seed=1, compare=assert_agree)


@pytest.mark.slow
def test_fuzz_rust_parser_100k() -> None:
    _fuzz(100_000, seed=int.from_bytes(os.urandom(4), "little"), compare=assert_agree)


# ---- the loader and the selector -----------------------------------------------------------------


def test_load_blueprint_goes_through_the_core(tmp_path: Path) -> None:
    path = tmp_path / "named.json"
    path.write_bytes(b'\xef\xbb\xbf{"nodes": {"a": {"id": "A", "uses": "x", "position": 1}}}')
    bp = load_blueprint(path)
    assert isinstance(bp, Blueprint) and bp.id == "named"
    assert bp.nodes[0].to_dict() == {"id": "A", "uses": "x"}
    path.write_bytes(b'{"id": "x", "nodes": [{"id": "A"}]}')
    with pytest.raises(BlueprintError) as info:
        load_blueprint(path)
    assert str(info.value) == "nodes[0].uses: required field is missing"  # no file prefix
    path.write_bytes(b'{"id": "\xff"}')
    with pytest.raises(BlueprintError, match=r"named.json: malformed JSON at line 1, column 9: "):
        load_blueprint(path)


def test_loaded_blueprint_is_the_sanitised_one() -> None:
    raw = {
        "id": "s",
        "nodes": [
            {"id": "A", "uses": "a", "config": {"maxRetries": 2.0, "retryDelay": 5, "x": 1}, "inputs": "B"}
        ],
        "edges": [{"source": "A", "target": "A", "action": None, "condition": "c"}],
    }
    bp = load_blueprint(raw)
    assert bp.nodes[0].config == NodeConfig(max_retries=2, retry_delay=5)
    assert type(bp.nodes[0].config.max_retries) is int
    assert bp.nodes[0].inputs == "B"
    assert bp.edges[0].action is None and bp.edges[0].condition == "c"
    assert bp.metadata == {}
    assert load_blueprint(json.dumps(raw)) == bp == load_blueprint(json.dumps(raw).encode())


def test_node_helpers_name_their_own_paths() -> None:
    with pytest.raises(BlueprintError) as info:
        _build_node({"id": "a", "uses": "u", "config": {"timeout": "1"}}, "dynamicNodes")
    assert str(info.value) == 'dynamicNodes.config.timeout: expected a number, got "1"'
    with pytest.raises(BlueprintError) as info:
        _build_node("x", "dynamicNodes")
    assert str(info.value) == 'dynamicNodes: expected an object, got "x"'
    assert _build_node({"id": "a", "uses": "u", "params": {"p": 1}}, "d").params == {"p": 1}
    with pytest.raises(BlueprintError) as info:
        node_config_from({"max_retries": 1.5})
    assert str(info.value) == "config.maxRetries: expected an integer, got 1.5"
    with pytest.raises(BlueprintError) as info:
        node_config_from({"timeout": True}, "node 'A'.config")
    assert str(info.value) == "node 'A'.config.timeout: expected a number, got true"
    with pytest.raises(BlueprintError) as info:
        node_config_from([1], "node 'A'.config")  # type: ignore[arg-type]
    assert str(info.value) == "node 'A'.config: expected an object, got an array"
    assert node_config_from({"join_strategy": "any"}) == NodeConfig(join_strategy="any")


def test_describe_is_the_twins() -> None:
    from bullflow import blueprint

    assert blueprint.describe is importlib.import_module("bullflow._pure.blueprint").describe
    assert blueprint.describe("x" * 41) == '"' + "x" * 37 + '..."'
    assert blueprint.describe(1e16) == "1e+16"
    assert blueprint.describe(object()) == "a object"


def test_selector_in_process_matches_environment() -> None:
    impl_module = importlib.import_module("bullflow._impl")
    expected = os.environ.get("BULLFLOW_IMPL", "rust")
    assert impl_module.parse_blueprint is IMPLS[expected].parse_blueprint


@pytest.mark.parametrize(
    ("value", "module"), [("rust", "bullflow._core"), ("python", "bullflow._pure.blueprint")]
)
def test_selector(value: str, module: str) -> None:
    env = {**os.environ, "BULLFLOW_IMPL": value}
    code = (
        "import bullflow._impl as i, bullflow.blueprint as b; "
        'print(i.parse_blueprint.__module__, b.load_blueprint(\'{"id": "s"}\').id)'
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [module, "s"]
