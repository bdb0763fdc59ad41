"""Tests for bullflow.expressions: the sandboxed JavaScript-subset evaluator."""

from __future__ import annotations

import math
import pickle
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bullflow.exceptions import ExpressionError
from bullflow.expressions import (
    MAX_EXPRESSION_LENGTH,
    MAX_NESTING_DEPTH,
    Expression,
    compile_expression,
    evaluate,
    is_truthy,
    validate_expression,
)


def same(actual: Any, expected: Any) -> bool:
    """Equality that also distinguishes types (1 vs 1.0 vs True) and treats NaN as equal to NaN."""
    if isinstance(expected, float) and math.isnan(expected):
        return isinstance(actual, float) and math.isnan(actual)
    return type(actual) is type(expected) and actual == expected


# --------------------------------------------------------------------------------------------------
# The expressions Flowcraft blueprints use
# --------------------------------------------------------------------------------------------------

FLOWCRAFT_CASES: list[tuple[str, dict[str, Any], Any]] = [
    ("route.total >= 500 && route.total <= 2000", {"route": {"total": 1665}}, True),
    ("route.total >= 500 && route.total <= 2000", {"route": {"total": 2500}}, False),
    ("result.output.status === 'OK'", {"result": {"output": {"status": "OK"}}}, True),
    ("result.output.status === 'OK'", {"result": {"output": {"status": "FAIL"}}}, False),
    ("result.output.status === 'OK'", {"result": {"output": None}}, False),
    ("counter === 5", {"counter": 5}, True),
    ("counter === 5", {"counter": "5"}, False),
    ("!flag", {"flag": False}, True),
    ("!flag", {"flag": True}, False),
    ("!flag", {}, True),
    ("map1 !== 0 && map2 < 3", {"map1": 1, "map2": 2}, True),
    ("map1 !== 0 && map2 < 3", {"map1": 0, "map2": 2}, False),
    ("true", {}, True),
    ("input * 2", {"input": 21}, 42),
    ("input * 2", {"input": 1.25}, 2.5),
    ("input.deeply.nested.value", {"input": {"deeply": {"nested": {"value": "x"}}}}, "x"),
    ("input.deeply.nested.value", {"input": {"deeply": None}}, None),
    ('context["increment"]', {"input": 1, "context": {"increment": 3}}, 3),
    ("context['inner']", {"input": 1, "context": {"inner": {"a": 1}}}, {"a": 1}),
    ("input.v", {"input": {"v": [1, 2]}}, [1, 2]),
    ("count < 5", {"count": 4}, True),
    ("count < 5", {"count": 5}, False),
    ("count < 5", {}, False),
    ("i < 10", {"i": 9}, True),
]


@pytest.mark.parametrize(("source", "scope", "expected"), FLOWCRAFT_CASES)
def test_flowcraft_expressions(source: str, scope: dict[str, Any], expected: Any) -> None:
    assert same(evaluate(source, scope), expected)
    assert same(compile_expression(source).evaluate(scope), expected)


def test_route_thresholds_only_the_middle_branch_is_taken() -> None:
    scope = {"route": {"total": 1665}}
    assert evaluate("route.total < 500", scope) is False
    assert evaluate("route.total >= 500 && route.total <= 2000", scope) is True
    assert evaluate("route.total > 2000", scope) is False


def test_transform_returns_the_very_object_from_the_data() -> None:
    inner = {"a": [1, 2]}
    scope = {"input": None, "context": {"inner": inner}}
    assert evaluate("context['inner']", scope) is inner
    assert evaluate('context["inner"] === context.inner', scope) is True


# --------------------------------------------------------------------------------------------------
# Names: unknown, hyphenated, dotted flat keys
# --------------------------------------------------------------------------------------------------


def test_unknown_names_are_none() -> None:
    assert evaluate("missing", {}) is None
    assert evaluate("missing.deeper.still", {}) is None
    assert evaluate("missing[0]", {}) is None
    assert evaluate("missing?.x", {}) is None
    assert evaluate("undefined", {"undefined": 1}) is None
    assert evaluate("null", {}) is None


def test_hyphenated_node_id_with_that_key_in_scope() -> None:
    scope = {"check-status": {"ok": True, "output": {"ok": "yes"}}, "check": 10, "status": 4}
    assert evaluate("check-status.ok", scope) is True
    assert evaluate("check-status.output.ok", scope) == "yes"
    assert evaluate("check - status", scope) == 6
    assert evaluate("check -status", scope) == 6
    assert evaluate("check- status", scope) == 6


def test_hyphenated_name_without_that_key_is_subtraction() -> None:
    scope = {"a": 5, "b": 2}
    assert evaluate("a-b", scope) == 3
    assert evaluate("a - b", scope) == 3
    assert evaluate("a - b", {**scope, "a-b": 100}) == 3
    assert evaluate("a-b", {**scope, "a-b": 100}) == 100


def test_hyphen_fallback_keeps_javascript_precedence() -> None:
    scope = {"a": 5, "b": 2, "x": 3}
    assert evaluate("a-b*2", scope) == 1
    assert evaluate("x*a-b", scope) == 13
    assert evaluate("a-b*2", {**scope, "a-b": 10}) == 20
    assert evaluate("x*a-b", {**scope, "a-b": 10}) == 30


def test_hyphen_chains_join_the_longest_key() -> None:
    scope = {"a": 10, "b": 3, "c": 1}
    assert evaluate("a-b-c", scope) == 6
    assert evaluate("a-b-c", {**scope, "a-b": 100}) == 99
    assert evaluate("a-b-c", {**scope, "b-c": 100}) == -90
    assert evaluate("a-b-c", {**scope, "a-b-c": 7, "a-b": 100}) == 7


def test_hyphen_decision_is_made_per_scope() -> None:
    expression = compile_expression("fetch-user.name")
    assert expression.evaluate({"fetch-user": {"name": "ann"}}) == "ann"
    assert expression.evaluate({"fetch": 3, "user": {"name": 1}}) == 2
    assert expression.evaluate({"fetch-user": {"name": "bob"}}) == "bob"


def test_hyphenated_numbers_and_keywords() -> None:
    assert evaluate("step-1.output", {"step-1": {"output": 7}}) == 7
    assert evaluate("step-1", {"step": 7}) == 6
    assert evaluate("step-2b.ok", {"step-2b": {"ok": 1}}) == 1
    assert evaluate("step-2b.ok", {}) is None
    assert evaluate("new-order.id", {"new-order": {"id": 9}}) == 9
    assert evaluate("check-in", {}) is None
    assert evaluate("true-branch", {"true-branch": 1}) == 1
    assert evaluate("true-branch", {"branch": 1}) == 0


def test_hyphenated_property_names() -> None:
    scope = {"x": {"check-status": {"ok": 1}, "check": 9}, "status": 4}
    assert evaluate("x.check-status.ok", scope) == 1
    assert evaluate("x.check-status", {"x": {"check": 9}, "status": 4}) == 5
    assert evaluate("x?.check-status?.ok", scope) == 1
    assert evaluate("{a-b: 1}", {}) == {"a-b": 1}


def test_dotted_flat_keys() -> None:
    scope = {"_outputs.route": {"total": 5, "nested": {"deep": True}}}
    assert evaluate("_outputs.route.total", scope) == 5
    assert evaluate("_outputs.route.nested.deep", scope) is True
    assert evaluate("_outputs.route", scope) == scope["_outputs.route"]
    assert evaluate("_outputs.other.total", scope) is None
    assert evaluate("_outputs.route.total > 3 && _outputs.route.total < 10", scope) is True


def test_dotted_flat_keys_shortest_first_and_only_when_the_head_is_missing() -> None:
    scope = {"a.b": {"c": 1}, "a.b.c": 2}
    assert evaluate("a.b.c", scope) == 1
    assert evaluate("a.b.c", {"a.b.c": 2}) == 2
    assert evaluate("a.b.c", {"a": {"b": {"c": 3}}, "a.b": {"c": 1}}) == 3
    assert evaluate("a.b", {"a": None, "a.b": 1}) is None


def test_flat_keys_with_hyphenated_node_ids() -> None:
    scope = {"_outputs.check-status": {"ok": True}, "check": 1, "status": 1}
    assert evaluate("_outputs.check-status.ok", scope) is True
    assert evaluate("_outputs.check-status.ok === true", scope) is True


def test_non_ascii_identifiers() -> None:
    assert evaluate("节点.值 + 1", {"节点": {"值": 1}}) == 2
    assert evaluate("$x + _y", {"$x": 1, "_y": 2}) == 3


# --------------------------------------------------------------------------------------------------
# Truthiness and logical operators
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        (False, False),
        (0, False),
        (0.0, False),
        (-0.0, False),
        (float("nan"), False),
        ("", False),
        (True, True),
        (1, True),
        (-1, True),
        (0.5, True),
        (float("inf"), True),
        ("0", True),
        ("false", True),
        (" ", True),
        ([], True),
        ({}, True),
        ([0], True),
        ((), True),
        (object(), True),
    ],
)
def test_truthiness(value: Any, expected: bool) -> None:
    assert is_truthy(value) is expected
    assert evaluate("!v", {"v": value}) is (not expected)
    assert evaluate("!!v", {"v": value}) is expected
    assert evaluate("v ? 'yes' : 'no'", {"v": value}) == ("yes" if expected else "no")


def test_logical_operators_return_operands() -> None:
    assert evaluate("a && b", {"a": 1, "b": "x"}) == "x"
    assert evaluate("a && b", {"a": 0, "b": "x"}) == 0
    assert evaluate("a || b", {"a": "", "b": [1]}) == [1]
    assert evaluate("a || b", {"a": "s", "b": 1}) == "s"
    assert evaluate("a && b && c", {"a": 1, "b": 2, "c": 3}) == 3
    assert evaluate("a || b || c", {"a": 0, "b": None, "c": False}) is False
    assert evaluate("a ?? b", {"a": 0, "b": 1}) == 0
    assert evaluate("a ?? b", {"a": None, "b": 1}) == 1
    assert evaluate("a ?? b ?? 'd'", {}) == "d"
    assert evaluate("a ?? ''", {"a": False}) is False


def test_short_circuit_does_not_evaluate_the_other_side() -> None:
    assert evaluate("false && x.y.z", {}) is False
    assert evaluate("true || x.y.z", {}) is True
    assert evaluate("1 ?? x", {}) == 1


def test_conditional_operator() -> None:
    assert evaluate("a ? 1 : 2", {"a": []}) == 1
    assert evaluate("a ? 1 : b ? 2 : 3", {"a": 0, "b": 1}) == 2
    assert evaluate("a ? 1 : b ? 2 : 3", {"a": 0, "b": 0}) == 3
    assert evaluate("a ? b ? 1 : 2 : 3", {"a": 1, "b": 0}) == 2
    assert evaluate("a ? 'x' : 'y' + '!'", {"a": 0}) == "y!"
    assert evaluate("(a ? 1 : 2) + 10", {"a": 1}) == 11


def test_optional_chaining() -> None:
    scope = {"a": {"b": {"c": 1}}, "arr": [{"x": 1}]}
    assert evaluate("a?.b?.c", scope) == 1
    assert evaluate("a?.x?.c", scope) is None
    assert evaluate("a?.x.c", scope) is None
    assert evaluate("nothing?.b", scope) is None
    assert evaluate("arr?.[0]?.x", scope) == 1
    assert evaluate("a?.b ? 1 : 2", scope) == 1
    assert evaluate("a?.5:1", {"a": 0}) == 1


# --------------------------------------------------------------------------------------------------
# Equality and comparison
# --------------------------------------------------------------------------------------------------

SHARED_LIST: list[int] = [1]

EQUALITY_TABLE: list[tuple[Any, Any, bool, bool]] = [
    # left, right, strict (===), loose (==)
    (1, 1, True, True),
    (1, 1.0, True, True),
    (True, 1, False, True),
    (False, 0, False, True),
    (True, True, True, True),
    ("5", 5, False, True),
    ("5.0", 5, False, True),
    ("", 0, False, True),
    (" ", 0, False, True),
    ("abc", 0, False, False),
    ("1", True, False, True),
    (None, None, True, True),
    (None, 0, False, False),
    (None, "", False, False),
    (None, False, False, False),
    (float("nan"), float("nan"), False, False),
    ("a", "a", True, True),
    ("a", "b", False, False),
    ([1], [1], False, False),
    ({}, {}, False, False),
    (SHARED_LIST, SHARED_LIST, True, True),
    ([1], 1, False, False),
]


@pytest.mark.parametrize(("left", "right", "strict", "loose"), EQUALITY_TABLE)
def test_equality_table(left: Any, right: Any, strict: bool, loose: bool) -> None:
    scope = {"l": left, "r": right}
    assert evaluate("l === r", scope) is strict
    assert evaluate("r === l", scope) is strict
    assert evaluate("l !== r", scope) is (not strict)
    assert evaluate("l == r", scope) is loose
    assert evaluate("r == l", scope) is loose
    assert evaluate("l != r", scope) is (not loose)


def test_equality_literals() -> None:
    assert evaluate("null == undefined", {}) is True
    assert evaluate("null === undefined", {}) is True  # both are None here
    assert evaluate("[] === []", {}) is False
    assert evaluate("NaN === NaN", {}) is False
    assert evaluate("NaN != NaN", {}) is True
    assert evaluate("0x1F === 31", {}) is True
    assert evaluate("1e3 === 1000", {}) is True
    assert evaluate("'a' === \"a\"", {}) is True


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 < 2", True),
        ("2 <= 2", True),
        ("3 > 2.5", True),
        ("2 >= 3", False),
        ("'a' < 'b'", True),
        ("'B' < 'a'", True),
        ("'10' < '9'", True),
        ("'10' < 9", False),
        ("10 > '9'", True),
        ("'' < 1", True),
        ("true > 0", True),
        ("false < true", True),
        ("null < 1", False),
        ("null >= 0", False),
        ("undefined < 1", False),
        ("NaN < 1", False),
        ("NaN >= NaN", False),
        ("'abc' < 1", False),
        ("'abc' > 1", False),
        ("[1] < 2", False),
        ("{} > 0", False),
        ("1 < 2 < 3", True),
        ("3 > 2 > 1", False),
        ("Infinity > 1e308", True),
        ("-Infinity < -1e308", True),
        ("'\\u{1F600}' > '\\uFFFF'", False),
    ],
)
def test_relational(source: str, expected: bool) -> None:
    assert evaluate(source, {}) is expected


def test_in_operator() -> None:
    scope: dict[str, Any] = {"d": {"a": 1, "n": None, 3: "int key"}, "arr": [10, 20], "s": "abc"}
    assert evaluate("'a' in d", scope) is True
    assert evaluate("'n' in d", scope) is True
    assert evaluate("'z' in d", scope) is False
    assert evaluate("3 in d", scope) is True
    assert evaluate("'3' in d", scope) is True
    assert evaluate("1 in arr", scope) is True
    assert evaluate("'1' in arr", scope) is True
    assert evaluate("2 in arr", scope) is False
    assert evaluate("-1 in arr", scope) is False
    assert evaluate("'length' in arr", scope) is True
    assert evaluate("'a' in s", scope) is False
    assert evaluate("'a' in nothing", scope) is False
    assert evaluate("!('z' in d)", scope) is True


def test_typeof() -> None:
    scope: dict[str, Any] = {"n": None, "b": True, "i": 1, "f": 1.5, "s": "", "l": [], "d": {}}
    assert evaluate("typeof n", scope) == "undefined"
    assert evaluate("typeof missing", scope) == "undefined"
    assert evaluate("typeof b", scope) == "boolean"
    assert evaluate("typeof i", scope) == "number"
    assert evaluate("typeof f", scope) == "number"
    assert evaluate("typeof NaN", scope) == "number"
    assert evaluate("typeof s", scope) == "string"
    assert evaluate("typeof l", scope) == "object"
    assert evaluate("typeof d", scope) == "object"
    assert evaluate("typeof i === 'number'", scope) is True
    assert evaluate("typeof typeof i", scope) == "string"


# --------------------------------------------------------------------------------------------------
# Arithmetic and strings
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("'a' + 1", "a1"),
        ("1 + 'a'", "1a"),
        ("'n' + null", "nnull"),
        ("'u' + undefined", "unull"),
        ("'b' + true", "btrue"),
        ("false + 'b'", "falseb"),
        ("'x' + 1.0", "x1"),
        ("'x' + 1.5", "x1.5"),
        ("'x' + -0.0", "x0"),
        ("'x' + 0.1", "x0.1"),
        ("'x' + 1e21", "x1e+21"),
        ("'x' + 1e-7", "x1e-7"),
        ("'x' + 123456789.125", "x123456789.125"),
        ("'x' + 0.000001", "x0.000001"),
        ("'x' + NaN", "xNaN"),
        ("'x' + Infinity", "xInfinity"),
        ("'x' + -Infinity", "x-Infinity"),
        ("'x' + [1, 2, [3, null]]", "x1,2,3,"),
        ("'x' + []", "x"),
        ("'x' + {}", "x[object Object]"),
        ("1 + 2 + '3'", "33"),
        ("'1' + 2 + 3", "123"),
        ("1 + 2", 3),
        ("1 + 2.5", 3.5),
        ("true + true", 2),
        ("true + 1.5", 2.5),
        ("null + 1", None),
        ("[] + 1", None),
        ("{} + {}", None),
    ],
)
def test_addition_and_concatenation(source: str, expected: Any) -> None:
    assert same(evaluate(source, {}), expected)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("7 - 2", 5),
        ("7 - 2.5", 4.5),
        ("'7' - 2", 5),
        ("'7.5' * 2", 15.0),
        ("' 12 ' * 1", 12),
        ("'' * 5", 0),
        ("'0x10' * 1", 16),
        ("'abc' * 2", None),
        ("null * 2", None),
        ("true * 3", 3),
        ("[] * 2", None),
        ("4 / 2", 2),
        ("-4 / 2", -2),
        ("7 / 2", 3.5),
        ("1 / 3", 1 / 3),
        ("4.0 / 2", 2.0),
        ("1 / 0", math.inf),
        ("-1 / 0", -math.inf),
        ("1 / -0.0", -math.inf),
        ("0 / 0", math.nan),
        ("0.0 / 0", math.nan),
        ("NaN / 0", math.nan),
        ("Infinity / Infinity", math.nan),
        ("7 % 3", 1),
        ("-7 % 3", -1),
        ("7 % -3", 1),
        ("-7 % -3", -1),
        ("7.5 % 2", 1.5),
        ("-7.5 % 2", -1.5),
        ("5 % 0", math.nan),
        ("5.5 % 0", math.nan),
        ("Infinity % 2", math.nan),
        ("5 % Infinity", 5.0),
        ("2 * 3 % 4", 2),
        ("-x", None),
        ("-'3'", -3),
        ("+'3.5'", 3.5),
        ("+true", 1),
        ("-true", -1),
        ("+'abc'", None),
        ("+null", None),
        ("-(-5)", 5),
        ("- -5", 5),
        ("2 + 3 * 4 - 6 / 2", 11),
        ("(2 + 3) * 4", 20),
        ("10 - 4 - 3", 3),
        ("100 / 10 / 5", 2),
    ],
)
def test_arithmetic(source: str, expected: Any) -> None:
    assert same(evaluate(source, {}), expected)


def test_huge_integers_do_not_hang_or_raise() -> None:
    big = 10**4000
    assert evaluate("a + 1", {"a": big}) == big + 1
    assert evaluate("a * a", {"a": big}) == math.inf
    assert evaluate("a / 3", {"a": big}) == math.inf
    assert evaluate("a + 0.5", {"a": big}) == math.inf
    assert evaluate("'' + a", {"a": 10**5000}) == "Infinity"
    assert evaluate("a < 1.5", {"a": big}) is False


def test_number_literals() -> None:
    assert same(evaluate(".5", {}), 0.5)
    assert same(evaluate("1.", {}), 1.0)
    assert same(evaluate("1e3", {}), 1000.0)
    assert same(evaluate("2.5E-3", {}), 0.0025)
    assert same(evaluate("0x1F", {}), 31)
    assert same(evaluate("0b101", {}), 5)
    assert same(evaluate("0o17", {}), 15)
    assert same(evaluate("1.e2", {}), 100.0)
    assert same(evaluate("-5", {}), -5)
    assert same(evaluate("NaN", {}), math.nan)
    assert same(evaluate("Infinity", {}), math.inf)


def test_string_literals_and_escapes() -> None:
    assert evaluate(r"'a\nb\tc\rd'", {}) == "a\nb\tc\rd"
    assert evaluate(r"'\\ \' \"'", {}) == "\\ ' \""
    assert evaluate(r'"\u00e9\x41\0"', {}) == "\u00e9A\0"
    assert evaluate(r"'\u{1F600}'", {}) == "\U0001f600"
    assert evaluate(r"'\ud83d\ude00'", {}) == "\U0001f600"
    assert evaluate(r"'\q'", {}) == "q"
    assert evaluate("'line\\\ncontinued'", {}) == "linecontinued"
    assert evaluate('"it\'s"', {}) == "it's"


def test_member_access_on_data() -> None:
    scope = {
        "arr": [10, 20, 30],
        "tup": (1, 2),
        "s": "héllo",
        "emoji": "a\U0001f600",
        "d": {"0": "zero", 1: "one", "length": 99, "x-y": 5},
        "n": 5,
    }
    assert evaluate("arr[0]", scope) == 10
    assert evaluate("arr['1']", scope) == 20
    assert evaluate("arr[1.0]", scope) == 20
    assert evaluate("arr[3]", scope) is None
    assert evaluate("arr[-1]", scope) is None
    assert evaluate("arr['01']", scope) is None
    assert evaluate("arr[true]", scope) is None
    assert evaluate("arr.length", scope) == 3
    assert evaluate("arr['length']", scope) == 3
    assert evaluate("tup[1]", scope) == 2
    assert evaluate("tup.length", scope) == 2
    assert evaluate("s.length", scope) == 5
    assert evaluate("s[1]", scope) == "é"
    assert evaluate("s[10]", scope) is None
    assert evaluate("emoji.length", scope) == 3  # UTF-16 code units, as in JavaScript
    assert evaluate("d[0]", scope) == "zero"
    assert evaluate("d[1]", scope) == "one"
    assert evaluate("d['1']", scope) == "one"
    assert evaluate("d.length", scope) == 99
    assert evaluate("d['x-y']", scope) == 5
    assert evaluate("n.length", scope) is None
    assert evaluate("n[0]", scope) is None
    assert evaluate("'abc'[1]", scope) == "b"
    assert evaluate("[1, 2, 3][2]", scope) == 3
    assert evaluate("{a: {b: 2}}.a.b", scope) == 2


def test_array_and_object_literals() -> None:
    scope = {"x": 1}
    assert evaluate("[1, 'a', x]", scope) == [1, "a", 1]
    assert evaluate("[1, 2,]", scope) == [1, 2]
    assert evaluate("[]", scope) == []
    assert evaluate("{a: 1, 'b': x, \"c d\": [x], 2: true}", scope) == {"a": 1, "b": 1, "c d": [1], "2": True}
    assert evaluate("{x, y: 2,}", scope) == {"x": 1, "y": 2}
    assert evaluate("{if: 1, new: 2}", scope) == {"if": 1, "new": 2}
    first = evaluate("[x]", scope)
    assert evaluate("[x]", scope) is not first  # literals are fresh objects every time


def test_comments_are_whitespace() -> None:
    assert evaluate("a /* the total */ + 1 // trailing", {"a": 1}) == 2


# --------------------------------------------------------------------------------------------------
# API: caching, validation, pickling, bad scopes
# --------------------------------------------------------------------------------------------------


def test_compile_is_cached() -> None:
    first = compile_expression("route.total >= 500")
    assert compile_expression("route.total >= 500") is first
    assert isinstance(first, Expression)
    assert first.source == "route.total >= 500"
    assert "route.total" in repr(first)


def test_validate_expression() -> None:
    validate_expression("a && b")
    with pytest.raises(ExpressionError):
        validate_expression("a &&")


def test_expression_pickles_by_source() -> None:
    expression = compile_expression("a-b + 1")
    clone = pickle.loads(pickle.dumps(expression))
    assert clone.source == expression.source
    assert clone.evaluate({"a": 3, "b": 1}) == 3


def test_scope_may_be_any_mapping() -> None:
    from types import MappingProxyType

    scope = MappingProxyType({"a": MappingProxyType({"b": 2}), "x-y": 1})
    assert evaluate("a.b + x-y", scope) == 3


def test_bad_scope_raises_expression_error() -> None:
    with pytest.raises(ExpressionError, match="mapping"):
        compile_expression("a + 1").evaluate([1, 2])  # type: ignore[arg-type]


def test_non_string_source_raises_expression_error() -> None:
    with pytest.raises(ExpressionError, match="string"):
        compile_expression(42)  # type: ignore[arg-type]


def test_cyclic_data_does_not_break_string_conversion() -> None:
    cyclic: list[Any] = [1]
    cyclic.append(cyclic)
    assert evaluate("'' + c", {"c": cyclic}) == "1,"


# --------------------------------------------------------------------------------------------------
# Security
# --------------------------------------------------------------------------------------------------


class Secret:
    password = "hunter2"

    def __repr__(self) -> str:
        return "Secret()"


@pytest.mark.parametrize(
    "source",
    [
        "__class__",
        "x.__class__",
        "x.__class__.__mro__",
        "x.__dict__",
        "x.password",
        "x['password']",
        "x.__init__.__globals__",
        "constructor",
        "constructor.constructor",
        "s.constructor.constructor",
        "s.__proto__",
        "s.prototype",
        "''.__class__.__mro__[1]",
        "[].constructor",
        "{}.__class__",
        "d.__dict__",
        "d.__class__.__bases__",
        "n.__class__",
    ],
)
def test_dunder_and_prototype_names_are_plain_keys(source: str) -> None:
    scope = {"x": Secret(), "s": "str", "d": {"k": 1}, "n": 1}
    assert evaluate(source, scope) is None


def test_dangerous_names_only_read_data_keys() -> None:
    assert evaluate("d.__class__", {"d": {"__class__": "just data"}}) == "just data"
    assert evaluate("d.constructor", {"d": {}}) is None


@pytest.mark.parametrize(
    "source",
    ["().__class__", "(1).__class__.__subclasses__()", "__import__('os')", "x.__class__()"],
)
def test_python_escape_attempts_fail_to_parse(source: str) -> None:
    with pytest.raises(ExpressionError):
        compile_expression(source)


@pytest.mark.parametrize(
    "source",
    [
        "process.exit()",
        "alert(1)",
        'eval("1")',
        "a.b()",
        "a?.()",
        "a.b?.(1)",
        "constructor.constructor('return process')()",
        "x['__class__']()",
        "(a)(1)",
        "[1][0]()",
    ],
)
def test_function_calls_are_rejected(source: str) -> None:
    with pytest.raises(ExpressionError, match="function calls are not supported") as info:
        compile_expression(source)
    assert info.value.position is not None
    assert source[info.value.position] == "("


# --------------------------------------------------------------------------------------------------
# Syntax errors
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "message", "position"),
    [
        ("a &&", "expected an operand after '&&'", 4),
        ("(a", "expected ')'", 2),
        ("a ===", "expected an operand after '==='", 5),
        ('"unterminated', "unterminated string", 0),
        ("'line\nbreak'", "unterminated string", 0),
        ("1 +* 2", "unexpected '*'", 3),
        ("@", "unexpected character '@'", 0),
        ("a # b", "unexpected character '#'", 2),
        ("", "empty", 0),
        ("   \n\t ", "empty", 0),
        ("/* only a comment */", "empty", 0),
        ("a = 1", "assignment", 2),
        ("a += 1", "assignment", 2),
        ("a == b = c", "assignment", 7),
        ("a++", "increment", 1),
        ("--a", "increment", 0),
        ("x => x * 2", "arrow functions", 2),
        ("new Date", "'new'", 0),
        ("`hello ${name}`", "template literals", 0),
        ("/ab+c/.test(s)", "regular expression", 0),
        ("a || /x/", "regular expression", 5),
        ("a, b", "comma", 1),
        ("(a, b)", "comma", 2),
        ("a ? b", "expected ':'", 5),
        ("a b", "unexpected identifier 'b'", 2),
        ("a)", "unmatched ')'", 1),
        ("[1, 2", "expected ']'", 5),
        ("{a: 1", "expected '}'", 5),
        ("{a 1}", "expected ':'", 3),
        ("{[k]: 1}", "computed property", 1),
        ("[1,,2]", "empty array elements", 3),
        ("a.", "property name", 2),
        ("a.1", "unexpected number", 1),
        ("a[]", "inside '[]'", 2),
        ("2 ** 3", "'**'", 2),
        ("a & b", "bitwise", 2),
        ("a | b", "bitwise", 2),
        ("~a", "bitwise", 0),
        ("a;", "statements", 1),
        ("[...a]", "spread", 1),
        ("this.x", "'this'", 0),
        ("function () {}", "function expressions", 0),
        ("delete a.b", "'delete'", 0),
        ("void 0", "'void'", 0),
        ("a instanceof B", "'instanceof'", 2),
        ("if", "unexpected keyword 'if'", 0),
        ("typeof", "expected an operand after 'typeof'", 6),
        ("012", "leading zeros", 0),
        ("1_000", "cannot directly follow a number", 1),
        ("3in x", "cannot directly follow a number", 1),
        ("0x", "cannot directly follow a number", 1),
        ("'\\x4'", "\\x escape", 1),
        ("'\\u12'", "\\u escape", 1),
        ("'\\u{110000}'", "\\u{...} escape", 1),
        ("'\\1'", "octal escape", 1),
        ("a /* open", "unterminated comment", 2),
        ("\\u0061", "backslash", 0),
        ("()", "empty parentheses", 0),
        ("{a() {}}", "methods", 2),
    ],
)
def test_syntax_errors(source: str, message: str, position: int) -> None:
    with pytest.raises(ExpressionError) as info:
        compile_expression(source)
    error = info.value
    assert message in error.message
    assert error.position == position
    assert error.expression == source
    assert message in str(error)


def test_too_long_source() -> None:
    source = "a" * 5000
    with pytest.raises(ExpressionError, match="too long") as info:
        compile_expression(source)
    assert info.value.position == MAX_EXPRESSION_LENGTH
    assert len(str(info.value)) < 300
    compile_expression("a+" * ((MAX_EXPRESSION_LENGTH - 1) // 2) + "a")  # just under the limit is fine


def test_deep_nesting() -> None:
    with pytest.raises(ExpressionError, match="nested too deeply") as info:
        compile_expression("(" * 200 + "1" + ")" * 200)
    assert info.value.position == MAX_NESTING_DEPTH
    with pytest.raises(ExpressionError, match="nested too deeply"):
        compile_expression("!" * 200 + "a")
    with pytest.raises(ExpressionError, match="nested too deeply"):
        compile_expression("[" * 100 + "]" * 100)
    with pytest.raises(ExpressionError, match="nested too deeply"):
        compile_expression("a?." * 3 + "[" * 100 + "0" + "]" * 100)
    with pytest.raises(ExpressionError, match="nested too deeply"):
        compile_expression("a+(" * 70 + "1" + ")" * 70)
    assert evaluate("(" * 40 + "1" + ")" * 40, {}) == 1


def test_long_flat_chains_are_not_nesting() -> None:
    assert evaluate(" && ".join(["a"] * 500), {"a": 1}) == 1
    assert evaluate(" + ".join(["1"] * 1000), {}) == 1000
    assert evaluate(" ?? ".join(["n"] * 300) + " ?? 7", {}) == 7
    assert evaluate("a" + ".b" * 500, {"a": {}}) is None
    assert evaluate(" : ".join(f"x === {i} ? {i}" for i in range(200)) + " : -1", {"x": 150}) == 150


# --------------------------------------------------------------------------------------------------
# Property-based: compile and evaluate never raise anything but ExpressionError
# --------------------------------------------------------------------------------------------------

NAMES = ["a", "b", "x", "input", "context", "route", "check", "status", "_outputs", "节点", "length"]
SOUP_TOKENS = [
    *NAMES,
    "__class__",
    "constructor",
    "0",
    "1",
    "2.5",
    ".5",
    "1e3",
    "0x1F",
    "'s'",
    '"t"',
    "'\\u0041'",
    "true",
    "false",
    "null",
    "undefined",
    "NaN",
    "Infinity",
    "typeof",
    "in",
    "new",
    "this",
    "=== ",
    "!==",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "&&",
    "||",
    "??",
    "?.",
    "?",
    ":",
    "+",
    "-",
    "*",
    "/",
    "%",
    "!",
    ".",
    ",",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "=",
    "=>",
    "++",
    "**",
    "&",
    ";",
    "`",
    "@",
    "\\",
    '"',
    "'",
    "//",
    "/*",
    "*/",
    "1-",
    "-1",
]

KEYS = st.sampled_from(
    [*NAMES, "check-status", "a-b", "b-x", "_outputs.route", "_outputs.check-status", "0", "1", "__class__"]
)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=6),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=12,
)
SCOPES = st.dictionaries(KEYS, JSON_VALUES, max_size=8)

ATOMS = st.sampled_from(
    [
        *NAMES,
        "check-status",
        "a-b",
        "b-x-a",
        "_outputs.route.total",
        "_outputs.check-status.ok",
        "x.check-status",
        "0",
        "1",
        "-3",
        "2.5",
        "1e3",
        "'s'",
        "'10'",
        "''",
        "true",
        "false",
        "null",
        "undefined",
        "NaN",
        "Infinity",
        "[]",
        "{}",
    ]
)
BINARY_OPERATORS = st.sampled_from(
    ["+", "-", "*", "/", "%", "<", "<=", ">", ">=", "==", "!=", "===", "!==", "&&", "||", "??", "in"]
)
SPACES = st.sampled_from(["", " "])


def _binary(parts: tuple[str, str, str, str, str]) -> str:
    left, space_before, operator, space_after, right = parts
    if operator == "in" or right[0] in "+-":  # `a in b`; avoid writing `a--1` or `a++1`
        space_after = " "
    return f"{left}{space_before}{operator if operator != 'in' else ' in'}{space_after}{right}"


def _extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, SPACES, BINARY_OPERATORS, SPACES, children).map(_binary),
        st.tuples(st.sampled_from(["!", "- ", "+ ", "typeof "]), children).map("".join),
        st.tuples(children, children, children).map(lambda t: f"{t[0]} ? {t[1]} : {t[2]}"),
        st.tuples(children, st.sampled_from(NAMES), st.sampled_from([".", "?."])).map(
            lambda t: f"({t[0]}){t[2]}{t[1]}"
        ),
        st.tuples(children, children).map(lambda t: f"({t[0]})[{t[1]}]"),
        st.lists(children, max_size=3).map(lambda items: "[" + ", ".join(items) + "]"),
        st.lists(st.tuples(st.sampled_from(NAMES), children), max_size=3).map(
            lambda items: "{" + ", ".join(f"{k}: {v}" for k, v in items) + "}"
        ),
        children.map(lambda c: f"({c})"),
    )


EXPRESSIONS = st.recursive(ATOMS, _extend, max_leaves=20)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=80))
def test_compile_arbitrary_text_only_raises_expression_error(source: str) -> None:
    try:
        compile_expression(source)
    except ExpressionError as error:
        assert error.position is None or 0 <= error.position <= len(source)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(SOUP_TOKENS), SPACES), max_size=25), SCOPES)
def test_token_soup_only_raises_expression_error(parts: list[tuple[str, str]], scope: dict[str, Any]) -> None:
    source = "".join(token + space for token, space in parts)
    try:
        expression = compile_expression(source)
    except ExpressionError as error:
        assert error.position is None or 0 <= error.position <= len(source)
        return
    try:
        expression.evaluate(scope)
    except ExpressionError:
        pass


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(EXPRESSIONS, SCOPES)
def test_random_expressions_evaluate_without_unexpected_errors(source: str, scope: dict[str, Any]) -> None:
    try:
        expression = compile_expression(source)
    except ExpressionError:
        return  # e.g. nested too deeply
    try:
        expression.evaluate(scope)
    except ExpressionError:
        pass


@settings(max_examples=200, deadline=None)
@given(EXPRESSIONS)
def test_generated_expressions_compile(source: str) -> None:
    try:
        compile_expression(source)
    except ExpressionError as error:
        assert "nested too deeply" in error.message
