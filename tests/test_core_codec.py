"""The wire codec in the Rust extension (bullflow._core) and its pure-Python twin (bullflow._pure):
the golden cases (checked against Node's JSON.stringify / JSON.parse when they were written),
every error with its message and key, the Redis reply helpers, job payloads, and hypothesis
searches for inputs where the two implementations disagree or a round trip changes a value."""

from __future__ import annotations

import collections
import datetime
import decimal
import enum
import inspect
import json
import math
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import bullflow._core as core
import bullflow._impl as impl_module
import bullflow._pure as pure
from bullflow._pure import codec as pure_codec
from bullflow.exceptions import CodecError

GOLDEN = json.loads((Path(__file__).parent / "data" / "codec_golden.json").read_text("utf-8"))
IMPLS = {"rust": core, "python": pure}
FUNCTIONS = [
    "decode_hash",
    "decode_hmget",
    "decode_job_payload",
    "decode_value",
    "encode_hset_args",
    "encode_job_payload",
    "encode_value",
]
TOO_DEEP = "nesting deeper than 512 levels (a circular reference?)"
INT_MIN, INT_MAX = -(2**63), 2**64 - 1


@pytest.fixture(params=list(IMPLS))
def impl(request: pytest.FixtureRequest) -> ModuleType:
    return IMPLS[request.param]


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def from_golden(value: Any) -> Any:
    return nested(512) if value == "__nested_512__" else value


def same(a: Any, b: Any) -> bool:
    """Equality that also checks types (int vs float vs bool), key order and the sign of zero.
    Iterative: values may be nested 512 deep."""
    pending = [(a, b)]
    while pending:
        x, y = pending.pop()
        if type(x) is not type(y):
            return False
        if isinstance(x, float):
            if x != y or math.copysign(1.0, x) != math.copysign(1.0, y):
                return False
        elif isinstance(x, list):
            if len(x) != len(y):
                return False
            pending.extend(zip(x, y, strict=True))
        elif isinstance(x, dict):
            if list(x) != list(y):
                return False
            pending.extend((x[k], y[k]) for k in x)
        elif x != y:
            return False
    return True


def equivalent(a: Any, b: Any) -> bool:
    """What a round trip through JSON keeps: numbers by value (1.0 comes back as 1, -0.0 as 0),
    tuples as lists, dict key order."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        # An integral float of 2**53 or more is written with JavaScript's digits
        # (2.231078817232653e16 -> 22310788172326530) and read back as that int: the same double.
        return a == b or (isinstance(b, float) and float(a) == b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(equivalent(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(equivalent(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)


def codec_error(call: Any, *args: Any, **kwargs: Any) -> CodecError:
    with pytest.raises(CodecError) as info:
        call(*args, **kwargs)
    return info.value


# ---- the modules -------------------------------------------------------------------------------------


def test_both_modules_and_the_selector_export_the_codec() -> None:
    for name in FUNCTIONS:
        assert callable(getattr(core, name))
        assert getattr(pure, name).__module__ == "bullflow._pure.codec"
        assert name in pure.__all__
        assert name in impl_module.__all__
        assert getattr(impl_module, name) is getattr(IMPLS[impl_module.IMPL], name)


# ---- golden cases --------------------------------------------------------------------------------


def test_golden_file_covers_the_spec() -> None:
    for group in ("encode", "decode", "decode_errors"):
        names = [case["name"] for case in GOLDEN[group]]
        assert len(names) == len(set(names)), group
    assert len(GOLDEN["encode"]) >= 60
    assert len(GOLDEN["decode"]) >= 25
    assert len(GOLDEN["decode_errors"]) >= 45
    encoded = {case["encoded"] for case in GOLDEN["encode"]}
    for text in ["0", "1", "0.1", "1e+21", "1e-7", "123456789012345680000", "5e-324", "9007199254740993"]:
        assert text in encoded
    assert "1.7976931348623157e+308" in encoded


@pytest.mark.parametrize("case", GOLDEN["encode"], ids=[case["name"] for case in GOLDEN["encode"]])
def test_golden_encode(impl: ModuleType, case: dict[str, Any]) -> None:
    encoded = case["encoded"].encode("utf-8")
    assert impl.encode_value(case["value"]) == encoded
    expected = case.get("decoded", case["value"])
    assert same(impl.decode_value(encoded), expected)
    assert same(impl.decode_value(case["encoded"]), expected)


@pytest.mark.parametrize("case", GOLDEN["decode"], ids=[case["name"] for case in GOLDEN["decode"]])
def test_golden_decode(impl: ModuleType, case: dict[str, Any]) -> None:
    expected = from_golden(case["value"])
    assert same(impl.decode_value(case["encoded"].encode("utf-8")), expected)
    assert same(impl.decode_value(case["encoded"]), expected)


@pytest.mark.parametrize(
    "case", GOLDEN["decode_errors"], ids=[case["name"] for case in GOLDEN["decode_errors"]]
)
def test_golden_decode_errors(impl: ModuleType, case: dict[str, Any]) -> None:
    err = codec_error(impl.decode_value, case["encoded"].encode("utf-8"))
    assert (err.message, err.key, str(err)) == (case["message"], None, case["message"])
    err = codec_error(impl.decode_value, case["encoded"], key="_outputs.A")
    assert (err.message, err.key) == (case["message"], "_outputs.A")
    assert str(err) == f"_outputs.A: {case['message']}"


# ---- encoding ------------------------------------------------------------------------------------


class Color(enum.IntEnum):
    RED = 1


class Name(str):
    def __str__(self) -> str:
        return "overridden"


class Ratio(float):
    def __repr__(self) -> str:
        return "overridden"


class Point(NamedTuple):
    x: int
    y: float


class Reversed(dict[str, Any]):
    def items(self) -> Any:
        return reversed(list(super().items()))


def test_encode_containers_and_subclasses(impl: ModuleType) -> None:
    ordered = collections.OrderedDict([("a", 1), ("b", 2)])
    ordered.move_to_end("a")
    value = {
        "tuple": (1, "x"),
        "enum": Color.RED,
        "flag": True,
        "name": Name("n"),
        "ratio": Ratio(0.5),
        "point": Point(1, 2.0),
        "ordered": ordered,
        "reversed": Reversed(a=1, b=2),
        "default": collections.defaultdict(int, z=0),
        "str key subclass": {Name("k"): None},
    }
    assert impl.encode_value(value) == (
        b'{"tuple":[1,"x"],"enum":1,"flag":true,"name":"n","ratio":0.5,"point":[1,2],'
        b'"ordered":{"b":2,"a":1},"reversed":{"b":2,"a":1},"default":{"z":0},'
        b'"str key subclass":{"k":null}}'
    )


def test_encode_keeps_insertion_order_and_integer_like_keys(impl: ModuleType) -> None:
    # JSON.stringify would put "1" and "2" first (JavaScript object key order); a dict keeps
    # insertion order, and so does the codec.
    assert impl.encode_value({"b": 1, "2": 2, "1": 3}) == b'{"b":1,"2":2,"1":3}'


def test_encode_integer_range(impl: ModuleType) -> None:
    assert impl.encode_value([INT_MIN, INT_MAX, 2**53 + 1]) == (
        b"[-9223372036854775808,18446744073709551615,9007199254740993]"
    )
    for number, path in [(INT_MAX + 1, "$"), (INT_MIN - 1, "$"), (10**30, "$")]:
        err = codec_error(impl.encode_value, number, "n")
        assert (err.message, err.key) == (f"integer out of range at {path}", "n")


def circular_list() -> list[Any]:
    value: list[Any] = [1]
    value.append(value)
    return value


def circular_dict() -> dict[str, Any]:
    value: dict[str, Any] = {}
    value["self"] = value
    return value


class Thing:
    pass


ENCODE_ERRORS = [
    ("set", {1}, "cannot encode a set at $"),
    ("set in a list", {"items": [1, 2, {3}]}, "cannot encode a set at $.items[2]"),
    ("frozenset", [frozenset()], "cannot encode a frozenset at $[0]"),
    ("bytes", {"a": {"b": b"x"}}, "cannot encode a bytes at $.a.b"),
    ("bytearray", bytearray(b"x"), "cannot encode a bytearray at $"),
    ("datetime", [datetime.datetime(2024, 1, 1)], "cannot encode a datetime at $[0]"),
    ("date", datetime.date(2024, 1, 1), "cannot encode a date at $"),
    ("decimal", decimal.Decimal("1.5"), "cannot encode a Decimal at $"),
    ("complex", 1j, "cannot encode a complex at $"),
    ("object", object(), "cannot encode an object at $"),
    ("class instance", {"x": Thing()}, "cannot encode a Thing at $.x"),
    ("function", [len], "cannot encode a builtin_function_or_method at $[0]"),
    ("type", int, "cannot encode a type at $"),
    ("mapping proxy", types.MappingProxyType({}), "cannot encode a mappingproxy at $"),
    ("range", range(3), "cannot encode a range at $"),
    ("nan", {"x": [0.5, math.nan]}, "cannot encode NaN at $.x[1]"),
    ("infinity", math.inf, "cannot encode Infinity at $"),
    ("-infinity", [[-math.inf]], "cannot encode -Infinity at $[0][0]"),
    ("big int", {"n": 2**64}, "integer out of range at $.n"),
    ("int key", {"a": {1: "x"}}, "dict key must be a str, not int at $.a"),
    ("None key", {None: 1}, "dict key must be a str, not NoneType at $"),
    ("tuple key", [{(1, 2): 1}], "dict key must be a str, not tuple at $[0]"),
    ("quoted path keys", {"a b": {"": {'"': {1}}}}, 'cannot encode a set at $["a b"][""]["\\""]'),
    ("identifier path keys", {"_out$1": {"é": {"2x": {1}}}}, 'cannot encode a set at $._out$1["é"]["2x"]'),
    ("surrogate path key", {"\ud800": {1}}, 'cannot encode a set at $["\\ud800"]'),
    ("circular list", circular_list(), TOO_DEEP),
    ("circular dict", circular_dict(), TOO_DEEP),
    ("513 levels", nested(513), TOO_DEEP),
    ("513 levels of dicts", {"a": nested(512)}, TOO_DEEP),
]


@pytest.mark.parametrize(("name", "value", "message"), ENCODE_ERRORS, ids=[c[0] for c in ENCODE_ERRORS])
def test_encode_errors(impl: ModuleType, name: str, value: Any, message: str) -> None:
    err = codec_error(impl.encode_value, value, key="_outputs.A")
    assert (err.message, err.key) == (message, "_outputs.A")
    assert str(err) == f"_outputs.A: {message}"
    err = codec_error(impl.encode_value, value)
    assert (err.message, err.key, str(err)) == (message, None, message)


def test_encode_error_with_empty_key_has_no_key(impl: ModuleType) -> None:
    err = codec_error(impl.encode_value, {1}, "")
    assert err.key is None and str(err) == "cannot encode a set at $"


def test_encode_nesting_limit(impl: ModuleType) -> None:
    assert impl.encode_value(nested(512)) == b"[" * 512 + b"]" * 512
    value: Any = {}
    for _ in range(511):
        value = {"a": value}
    assert impl.encode_value(value).count(b"{") == 512


def test_encode_lone_surrogates(impl: ModuleType) -> None:
    assert impl.encode_value("\ud800") == b'"\\ud800"'
    assert impl.encode_value({"\udfff": ["a\udc00b"]}) == b'{"\\udfff":["a\\udc00b"]}'
    # Two surrogate code points in a Python str: each is escaped; JSON.parse (and the decoder)
    # read the escaped pair as the one astral character.
    assert impl.encode_value("\ud83d\ude00") == b'"\\ud83d\\ude00"'
    assert impl.decode_value(b'"\\ud83d\\ude00"') == "\U0001f600"
    for text in ["\ud800", "\udfff", "x\ud800y", "\udc00\ud800", "\ud83dA"]:
        assert impl.decode_value(impl.encode_value(text)) == text


def test_key_must_be_a_str(impl: ModuleType) -> None:
    with pytest.raises(TypeError, match=r"^key must be a str, not NoneType$"):
        impl.encode_value(1, None)
    with pytest.raises(TypeError, match=r"^key must be a str, not bytes$"):
        impl.decode_value(b"1", key=b"k")
    # The key is checked before the value.
    with pytest.raises(TypeError, match=r"^key must be a str, not int$"):
        impl.encode_value({1}, 3)


def test_signatures_match() -> None:
    for name in FUNCTIONS:
        rust = inspect.signature(getattr(core, name)).parameters.values()
        python = inspect.signature(getattr(pure, name)).parameters.values()
        assert [(p.name, p.default) for p in rust] == [(p.name, p.default) for p in python], name
    assert str(inspect.signature(core.encode_value)) == "(value, key='')"


# ---- decoding ------------------------------------------------------------------------------------


def test_decode_types(impl: ModuleType) -> None:
    value = impl.decode_value(b'{"i":1,"f":1.0,"e":1e2,"b":true,"n":null,"s":"x","l":[],"o":{}}')
    assert [type(v) for v in value.values()] == [int, float, float, bool, type(None), str, list, dict]
    assert impl.decode_value(b"") is None
    assert impl.decode_value("") is None


def test_decode_accepts_str_and_bytes_subclasses(impl: ModuleType) -> None:
    class Text(str):
        pass

    class Data(bytes):
        pass

    assert impl.decode_value(Text('{"a":[1]}')) == {"a": [1]}
    assert impl.decode_value(Data(b'{"a":[1]}')) == {"a": [1]}


@pytest.mark.parametrize("data", [bytearray(b"1"), memoryview(b"1"), None, 1, ["1"]])
def test_decode_data_type(impl: ModuleType, data: Any) -> None:
    with pytest.raises(TypeError, match=rf"^data must be bytes or str, not {type(data).__name__}$"):
        impl.decode_value(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff", "invalid UTF-8 at byte 0"),
        (b'"ab\xff"', "invalid UTF-8 at byte 3"),
        (b'["\xc3"]', "invalid UTF-8 at byte 2"),
        (b'"\xed\xa0\x80"', "invalid UTF-8 at byte 1"),  # a surrogate, UTF-8 encoded
        (b'"\xc0\x80"', "invalid UTF-8 at byte 1"),  # overlong
        (b"[1 2] \xff", "invalid UTF-8 at byte 6"),  # UTF-8 is checked first
        ('"é\ud800"', "invalid UTF-8 at byte 3"),  # a str with a lone surrogate
        ("\udfff", "invalid UTF-8 at byte 0"),
    ],
)
def test_decode_invalid_unicode(impl: ModuleType, data: bytes | str, message: str) -> None:
    err = codec_error(impl.decode_value, data, "k")
    assert (err.message, err.key) == (message, "k")


def test_decode_lone_surrogate_escapes(impl: ModuleType) -> None:
    assert impl.decode_value(b'"\\ud800"') == "\ud800"
    assert impl.decode_value(b'"\\udc00\\ud800"') == "\udc00\ud800"
    assert impl.decode_value(b'"\\ud800\\u0041"') == "\ud800A"
    assert impl.decode_value(b'{"\\udfff":1}') == {"\udfff": 1}
    assert impl.decode_value('"\\uD83D\\uDE00"') == "\U0001f600"


def test_decode_big_numbers(impl: ModuleType) -> None:
    # Integer literals beyond -(2**63) .. 2**64 - 1 are read as JSON.parse reads them: doubles.
    # So what a Node worker wrote, read and written back, is the same text.
    for text in ["123456789012345680000", "18446744073709551616", "-9223372036854775809", "1" + "0" * 308]:
        value = impl.decode_value(text)
        assert type(value) is float and value == float(text)
    assert impl.encode_value(impl.decode_value(b"123456789012345680000")) == b"123456789012345680000"
    err = codec_error(impl.decode_value, "-" + "9" * 400)
    assert err.message == "number out of range at byte 0"
    err = codec_error(impl.decode_value, '{"a": 1E+309}', "k")
    assert (err.message, err.key) == ("number out of range at byte 6", "k")
    # A very long literal is fine (and fast) while it stays in range.
    assert impl.decode_value("0." + "1" * 5000) == float("0." + "1" * 5000)
    assert impl.decode_value("1" * 5000 + "e-5000") == float("1" * 5000 + "e-5000")


def test_decode_nesting_limit(impl: ModuleType) -> None:
    assert impl.decode_value("[" * 512 + "]" * 512) == nested(512)
    text = '{"a":' * 512 + "1" + "}" * 512
    value = impl.decode_value(text)
    for _ in range(512):
        value = value["a"]
    assert value == 1
    err = codec_error(impl.decode_value, "[" * 100_000)
    assert err.message == "nesting deeper than 512 levels at byte 512"
    err = codec_error(impl.decode_value, "[" * 600 + "]" * 600)
    assert err.message == "nesting deeper than 512 levels at byte 512"
    # The first error in document order wins.
    err = codec_error(impl.decode_value, "[x" + "[" * 600)
    assert err.message == "expected a JSON value at byte 1"


def test_pure_decoder_survives_a_deep_python_stack() -> None:
    # The stdlib decoder recurses; with little stack left it raises RecursionError, and the twin
    # falls back to its iterative reader.
    limit = sys.getrecursionlimit()
    text = "[" * 512 + "]" * 512

    def deep(n: int) -> Any:
        return deep(n - 1) if n else pure.decode_value(text)

    sys.setrecursionlimit(500)
    try:
        value = deep(100)
    finally:
        sys.setrecursionlimit(limit)
    assert same(value, nested(512))


# ---- HSET / HGETALL / HMGET ----------------------------------------------------------------------


def test_encode_hset_args(impl: ModuleType) -> None:
    writes = {"_outputs.A": {"x": [1, 2.5]}, "é": "ü", "n": None}
    assert impl.encode_hset_args(writes) == [
        b"_outputs.A",
        b'{"x":[1,2.5]}',
        "é".encode(),
        '"ü"'.encode(),
        b"n",
        b"null",
    ]
    assert impl.encode_hset_args({}) == []
    assert impl.encode_hset_args(types.MappingProxyType({"a": 1})) == [b"a", b"1"]


def test_encode_hset_args_errors(impl: ModuleType) -> None:
    err = codec_error(impl.encode_hset_args, {"ok": 1, "_outputs.B": {"items": [{1}]}})
    assert (err.message, err.key) == ("cannot encode a set at $.items[0]", "_outputs.B")
    assert str(err) == "_outputs.B: cannot encode a set at $.items[0]"
    err = codec_error(impl.encode_hset_args, {"a\ud800": 1})
    assert (err.message, err.key) == ("field name is not valid Unicode (it has a lone surrogate)", "a\ud800")
    err = codec_error(impl.encode_hset_args, {"": math.nan})
    assert (err.message, err.key) == ("cannot encode NaN at $", None)
    with pytest.raises(TypeError, match=r"^writes must be a mapping, not list$"):
        impl.encode_hset_args([("a", 1)])
    with pytest.raises(TypeError, match=r"^writes keys must be str, not bytes$"):
        impl.encode_hset_args({b"a": 1})


def test_decode_hash_shapes(impl: ModuleType) -> None:
    expected = {"a": 1, "_outputs.B": {"x": [1.5, None]}, "empty": None, "é": "ü"}
    as_bytes = {b"a": b"1", b"_outputs.B": b'{"x":[1.5,null]}', b"empty": b"", "é".encode(): '"ü"'.encode()}
    as_str = {"a": "1", "_outputs.B": '{"x":[1.5,null]}', "empty": "", "é": '"ü"'}
    flat = [item for pair in as_bytes.items() for item in pair]
    for reply in [
        as_bytes,
        as_str,
        flat,
        tuple(flat),
        types.MappingProxyType(as_bytes),
        collections.deque(flat),
    ]:
        assert same(impl.decode_hash(reply), expected)
    assert impl.decode_hash({}) == {} and impl.decode_hash([]) == {}
    # A duplicate field in a flat reply: the last value wins.
    assert impl.decode_hash([b"a", b"1", b"a", b"2"]) == {"a": 2}


def test_decode_hash_errors(impl: ModuleType) -> None:
    err = codec_error(impl.decode_hash, {b"a": b"1", b"_outputs.B": b"[1,"})
    assert (err.message, err.key) == ("unexpected end of input at byte 3", "_outputs.B")
    err = codec_error(impl.decode_hash, [b"a", b"1", b"b"])
    assert (err.message, err.key) == ("HGETALL reply has an odd number of items (3)", None)
    err = codec_error(impl.decode_hash, {b"ab\xff\xfe": b"1"})
    assert (err.message, err.key) == ("field name is not valid UTF-8 at byte 2", "ab\\xff\\xfe")
    err = codec_error(impl.decode_hash, {b"a": b'"\xff"'})
    assert (err.message, err.key) == ("invalid UTF-8 at byte 1", "a")
    with pytest.raises(TypeError, match=r"^reply must be a mapping or a sequence, not int$"):
        impl.decode_hash(3)
    with pytest.raises(TypeError, match=r"^reply must be a mapping or a sequence, not bytes$"):
        impl.decode_hash(b"a1")
    with pytest.raises(TypeError, match=r"^reply\[1\] must be bytes or str, not int$"):
        impl.decode_hash([b"a", 1])
    with pytest.raises(TypeError, match=r"^reply\[2\] must be bytes or str, not NoneType$"):
        impl.decode_hash([b"a", b"1", None, b"2"])
    with pytest.raises(TypeError, match=r"^reply keys must be bytes or str, not int$"):
        impl.decode_hash({1: b"1"})
    with pytest.raises(TypeError, match=r"^reply values must be bytes or str, not NoneType$"):
        impl.decode_hash({b"a": None})


def test_decode_hmget(impl: ModuleType) -> None:
    keys = ["a", "_outputs.B", "missing", "e"]
    values = [b"1", '{"x":true}', None, b""]
    assert same(impl.decode_hmget(keys, values), {"a": 1, "_outputs.B": {"x": True}, "e": None})
    assert impl.decode_hmget((), ()) == {}
    assert impl.decode_hmget(("a",), (b"[]",)) == {"a": []}


def test_decode_hmget_errors(impl: ModuleType) -> None:
    err = codec_error(impl.decode_hmget, ["a", "b"], [b"1", b"tru"])
    assert (err.message, err.key) == ("unexpected end of input at byte 3", "b")
    err = codec_error(impl.decode_hmget, ["a", "b"], [b"1"])
    assert (err.message, err.key) == ("HMGET reply has 1 values for 2 keys", None)
    with pytest.raises(TypeError, match=r"^keys must be a sequence of str, not str$"):
        impl.decode_hmget("ab", [b"1", b"2"])
    with pytest.raises(TypeError, match=r"^keys\[1\] must be a str, not bytes$"):
        impl.decode_hmget(["a", b"b"], [b"1", b"2"])
    with pytest.raises(TypeError, match=r"^values must be a sequence, not dict$"):
        impl.decode_hmget(["a"], {"a": b"1"})
    with pytest.raises(TypeError, match=r"^values\[0\] must be bytes, str or None, not int$"):
        impl.decode_hmget(["a"], [1])


# ---- job payloads --------------------------------------------------------------------------------


def test_job_payload_round_trip(impl: ModuleType) -> None:
    payload = {"runId": "r1", "blueprintId": "bp", "nodeId": "A", "attempt": 2, "iteration": 0, "x": [1.5]}
    data = impl.encode_job_payload(payload)
    assert data == b'{"runId":"r1","blueprintId":"bp","nodeId":"A","attempt":2,"iteration":0,"x":[1.5]}'
    assert same(impl.decode_job_payload(data), payload)
    assert same(impl.decode_job_payload(data.decode()), payload)
    assert impl.encode_job_payload(types.MappingProxyType(payload)) == data


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"blueprintId": "bp", "nodeId": "A"}, "job payload: runId must be a string"),
        ({"runId": 1, "blueprintId": "bp", "nodeId": "A"}, "job payload: runId must be a string"),
        ({"runId": "r", "nodeId": "A"}, "job payload: blueprintId must be a string"),
        ({"runId": "r", "blueprintId": None, "nodeId": "A"}, "job payload: blueprintId must be a string"),
        ({"runId": "r", "blueprintId": "bp", "nodeId": ["A"]}, "job payload: nodeId must be a string"),
        (
            {"runId": "r", "blueprintId": "bp", "nodeId": "A", "x": {1}},
            "job payload: cannot encode a set at $.x",
        ),
        (
            {"runId": "r", "blueprintId": "bp", "nodeId": "A", 1: 2},
            "job payload: dict key must be a str, not int at $",
        ),
    ],
)
def test_job_payload_encode_errors(impl: ModuleType, payload: dict[Any, Any], message: str) -> None:
    err = codec_error(impl.encode_job_payload, payload)
    assert (err.message, err.key, str(err)) == (message, None, message)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "job payload: expected a JSON object, not null"),
        (b"null", "job payload: expected a JSON object, not null"),
        (b"true", "job payload: expected a JSON object, not a boolean"),
        (b"1.5", "job payload: expected a JSON object, not a number"),
        (b'"x"', "job payload: expected a JSON object, not a string"),
        (b"[]", "job payload: expected a JSON object, not an array"),
        (b"{}", "job payload: runId must be a string"),
        (b'{"runId":"r","blueprintId":"b","nodeId":7}', "job payload: nodeId must be a string"),
        (b'{"runId":"r",}', "job payload: expected a property name in double quotes at byte 13"),
        (b'{"runId":"\xff"}', "job payload: invalid UTF-8 at byte 10"),
    ],
)
def test_job_payload_decode_errors(impl: ModuleType, data: bytes, message: str) -> None:
    err = codec_error(impl.decode_job_payload, data)
    assert (err.message, err.key) == (message, None)


def test_job_payload_argument_types(impl: ModuleType) -> None:
    with pytest.raises(TypeError, match=r"^payload must be a mapping, not list$"):
        impl.encode_job_payload([])
    with pytest.raises(TypeError, match=r"^data must be bytes or str, not dict$"):
        impl.decode_job_payload({})


# ---- the two implementations agree (hypothesis) --------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=INT_MIN, max_value=INT_MAX)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=6)
    | st.dictionaries(st.text(max_size=8), children, max_size=6),
    max_leaves=40,
)
float_free_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=INT_MIN, max_value=INT_MAX) | st.text(),
    lambda children: st.lists(children, max_size=6)
    | st.dictionaries(st.text(max_size=8), children, max_size=6),
    max_leaves=40,
)
any_text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=40)
HYPOTHESIS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@HYPOTHESIS
@given(json_values)
@example({"x": [1e-7, 1e21, -0.0, 5e-324, 2.0**64, 1e16, 123456789012345680000.0]})
def test_random_values_agree_and_round_trip(value: Any) -> None:
    encoded = core.encode_value(value)
    assert pure.encode_value(value) == encoded
    rust, python = core.decode_value(encoded), pure.decode_value(encoded)
    assert same(rust, python)
    assert equivalent(rust, value)
    assert core.encode_value(rust) == encoded  # writing what was read gives the same text
    assert same(core.decode_value(encoded.decode("utf-8")), rust)


@HYPOTHESIS
@given(float_free_values)
def test_encoding_matches_json_dumps_without_floats(value: Any) -> None:
    expected = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert core.encode_value(value) == expected
    assert pure.encode_value(value) == expected


@HYPOTHESIS
@given(st.floats(allow_nan=False, allow_infinity=False))
@example(1e21)
@example(1e-7)
@example(9.999999999999999e-7)
@example(1e-6)
@example(-1113178120592002.2)  # a tie between two shortest digit strings: the even one
@example(999999999999999900000.0)
def test_random_floats(value: float) -> None:
    text = core.encode_value(value).decode()
    assert pure.encode_value(value).decode() == text
    assert float(text) == value  # shortest round-trip digits
    magnitude = abs(value)
    # JavaScript's rule: decimal notation down to 1e-6 (1e-7 is "1e-7"), up to 1e21 (excluded).
    if magnitude == 0 or 1e-6 <= magnitude < 1e21:
        assert "e" not in text
        assert not text.endswith(".0") and (text == "0" or not text.lstrip("-").startswith("00"))
    else:
        assert "e+" in text or "e-" in text
    # No shorter digit string reads back as the same double.
    digits = text.lstrip("-").split("e")[0].replace(".", "").strip("0")
    if len(digits) > 1:
        assert float(f"{value:.{len(digits) - 2}e}") != value


@HYPOTHESIS
@given(any_text)
@example("\ud83d\ude00\ud800")
def test_random_text_with_surrogates(text: str) -> None:
    encoded = core.encode_value({text: [text]})
    assert pure.encode_value({text: [text]}) == encoded
    encoded.decode("utf-8")  # always valid UTF-8
    # Each surrogate code point is escaped; escaped pairs are read back as one character, as
    # JSON.parse reads them into a UTF-16 string.
    expected = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    for module in (core, pure):
        assert module.decode_value(encoded) == {expected: [expected]}


JSONISH = st.text(alphabet=list('[]{}":,.-+eE0123456789 \t\n\\/ubfnrtaslx\x00\x1fé😀\ud800'), max_size=30)


def mutated_encodings() -> st.SearchStrategy[bytes]:
    def mutate(args: tuple[bytes, int, bytes, int]) -> bytes:
        data, at, insert, drop = args
        at = at % (len(data) + 1)
        return data[:at] + insert + data[at + drop :]

    return st.tuples(
        json_values.map(core.encode_value), st.integers(0, 200), st.binary(max_size=3), st.integers(0, 3)
    ).map(mutate)


def outcome(module: ModuleType, data: bytes | str) -> tuple[str, Any]:
    try:
        return "ok", module.decode_value(data, "k")
    except CodecError as err:
        assert err.key == "k"
        return "error", err.message


@HYPOTHESIS
@given(st.binary(max_size=40) | mutated_encodings() | JSONISH)
@example(b"\xef\xbb\xbf1")
@example("[1,2")
@example('"\\ud800\\u12"')
def test_random_input_to_decode(data: bytes | str) -> None:
    rust, python = outcome(core, data), outcome(pure, data)
    assert rust[0] == python[0], (rust, python)
    if rust[0] == "ok":
        assert same(rust[1], python[1])
    else:
        assert rust[1] == python[1]


@HYPOTHESIS
@given(mutated_encodings() | JSONISH.map(lambda s: s.encode("utf-8", "surrogatepass")))
def test_pure_fast_path_agrees_with_its_strict_reader(data: bytes) -> None:
    # The twin reads with the stdlib decoder and falls back to its own strict reader; the two
    # must agree wherever the fast path answers.
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return
    if not text:
        return
    try:
        strict: tuple[str, Any] = ("ok", pure_codec._strict_parse(text))
    except pure_codec._SyntaxError as err:
        strict = ("error", err.message(text))
    got = outcome(pure, data)
    assert got[0] == strict[0]
    assert same(got[1], strict[1]) if got[0] == "ok" else got[1] == strict[1]


@HYPOTHESIS
@given(
    st.dictionaries(st.binary(max_size=6), st.sampled_from([b"1", b'"x"', b"[", b"", b"\xff"]), max_size=4)
)
def test_random_hashes_agree(reply: dict[bytes, bytes]) -> None:
    def run(module: ModuleType) -> tuple[str, Any, Any]:
        try:
            return "ok", module.decode_hash(reply), None
        except CodecError as err:
            return "error", err.message, err.key

    rust, python = run(core), run(pure)
    assert rust[0] == python[0]
    assert rust[1:] == python[1:] if rust[0] == "error" else same(rust[1], python[1])


# ---- odd inputs that must not crash the extension ------------------------------------------------


class Shrinking(dict[str, Any]):
    """A dict subclass whose items() empties another dict while that one is being written."""

    victim: dict[str, Any]

    def items(self) -> Any:
        self.victim.clear()
        return super().items()


def test_mutation_during_encoding_is_an_error_not_a_crash(impl: ModuleType) -> None:
    outer: dict[str, Any] = {}
    inner = Shrinking(a=1)
    inner.victim = outer
    outer.update(x=inner, y=2)
    with pytest.raises(RuntimeError, match="changed size during iteration"):
        impl.encode_value(outer)


def test_list_mutation_during_encoding(impl: ModuleType) -> None:
    class Growing(list[Any]):
        def __iter__(self) -> Iterator[Any]:
            victim.append(0)
            return super().__iter__()

    victim: list[Any] = [1, Growing([2])]
    # The outer list is read item by item, like a Python loop: it sees the appended item.
    assert impl.encode_value(victim) == b"[1,[2],0]"
