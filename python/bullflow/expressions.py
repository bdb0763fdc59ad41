"""A safe evaluator for the JavaScript-like expressions Flowcraft blueprints carry.

Edge ``condition``\\ s (``route.total >= 500 && route.total <= 2000``), edge ``transform``\\ s
(``input * 2``, ``context["increment"]``) and loop conditions (``count < 5``) were evaluated by
Flowcraft with JavaScript's ``new Function``. This module interprets the same subset of JavaScript
without ever handing user text to Python's ``eval``/``exec``/``compile``.

The language
============

Precedence, lowest first::

    a ? b : c                      (right-associative)
    ??   ||   &&
    ==  !=  ===  !==
    <  <=  >  >=  in
    +  -
    *  /  %
    !x  -x  +x  typeof x
    a.b  a?.b  a[expr]  a?.[expr]

Operands are numbers (``1``, ``.5``, ``1e3``, ``0x1F``), strings in single or double quotes with the
JavaScript escapes, ``true``, ``false``, ``null``, ``undefined``, ``NaN``, ``Infinity``, identifiers
(non-ASCII letters allowed), parenthesised expressions, array literals and object literals. Comments
(``//`` and ``/* */``) count as whitespace. Everything else JavaScript has - function calls,
assignment, ``++``, arrow functions, ``new``, template and regular-expression literals, comma
sequences, bitwise operators, ``**`` - is rejected with an :class:`ExpressionError` that says what is
not supported and where.

Values are plain Python data: ``None`` is both ``null`` and ``undefined``; ``bool``, ``int``/``float``,
``str``, ``list``/``tuple`` (arrays) and ``dict``/any ``Mapping`` (objects). Operators follow
JavaScript: ``&&``/``||``/``??`` return an operand and short-circuit, truthiness is JavaScript's
(``[]`` and ``{}`` are truthy), ``===`` does not equate ``true`` and ``1``, ``"5" == 5``, ``"a" + 1`` is
``"a1"``, ``7 / 2`` is ``3.5``, ``1 / 0`` is ``Infinity``, ``-7 % 3`` is ``-1``. Where JavaScript would
produce ``NaN`` from a non-number (``null - 1``, ``"abc" * 2``, ``[] + 1``) the result is ``None``, and
comparisons involving such values are ``false``. Unknown names are ``None``.

Two extensions make Flowcraft's node ids and flat context keys usable:

* **Hyphenated names.** ``check-status`` written with no whitespace around the ``-`` is looked up as
  the name ``"check-status"`` when the scope (or, after a dot, the object) has that key; otherwise it
  is the subtraction ``check - status`` with exactly JavaScript's precedence. Chains (``a-b-c``) are
  joined greedily, longest key first. Parts may be integers (``step-1``), and a chain containing a
  keyword (``new-order``) or written as an object key is always a name.
* **Dotted flat keys.** For ``x.y.z`` where ``x`` is not a key of the scope, the flat keys ``"x.y"``
  and then ``"x.y.z"`` are tried, and the remaining names are applied as property accesses to the
  first one found. So ``_outputs.route.total`` reads ``scope["_outputs.route"]["total"]``.

Safety
======

* Source text is tokenised and parsed by hand; nothing is ever passed to ``eval``/``exec``/``compile``.
* Property access only *reads data*: ``Mapping.get`` on mappings, indexing on lists, tuples and
  strings, ``.length`` on arrays and strings. ``getattr`` is never used, so ``__class__``,
  ``constructor``, ``__proto__`` or ``__dict__`` are ordinary dictionary keys and are ``None`` unless the
  data really has them. No callable is ever invoked, because calls cannot be written.
* Sources are limited to 4096 characters and 64 levels of nesting, so parsing and evaluation cannot
  exhaust the stack; huge integer products fall back to floating point as in JavaScript.
* :func:`compile_expression` raises only :class:`ExpressionError`, for any string. Evaluation does
  not raise for ordinary data; anything unexpected is reported as :class:`ExpressionError`.

Each source is parsed once (cached) and compiled into nested Python closures, so evaluating
``route.total >= 500 && route.total <= 2000`` costs a few microseconds.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, NamedTuple, NoReturn

from bullflow.exceptions import ExpressionError

__all__ = [
    "MAX_EXPRESSION_LENGTH",
    "MAX_NESTING_DEPTH",
    "Expression",
    "compile_expression",
    "evaluate",
    "is_truthy",
    "validate_expression",
]

MAX_EXPRESSION_LENGTH: Final = 4096
"""Longest accepted source, in characters."""

MAX_NESTING_DEPTH: Final = 64
"""Deepest accepted nesting of parentheses, brackets, operators and operands."""

Scope = Mapping[str, Any]
Evaluator = Callable[[Scope], Any]

_MISSING: Final[Any] = object()
_NAN: Final = float("nan")
_INF: Final = float("inf")
_MAX_VARIANTS: Final = 64
_MAX_EXACT_PRODUCT_BITS: Final = 2048


def _fail(message: str, source: str, position: int) -> NoReturn:
    raise ExpressionError(message, source, position)


# --------------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------------


class _Token(NamedTuple):
    kind: str  # "num", "str", "name", "op" or "eof"
    value: Any  # the number, the decoded string, the name or the operator text
    pos: int
    end: int
    space_before: bool  # whitespace or a comment (or the start of the source) precedes the token
    raw: str


_LINE_TERMINATORS: Final = "\n\r\u2028\u2029"
_JS_SPACES: Final = frozenset(
    " \t\v\f\u00a0\u1680\u202f\u205f\u3000\ufeff"
    + _LINE_TERMINATORS
    + "".join(map(chr, range(0x2000, 0x200B)))
)
_ASCII_ID_START: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_$")
_ASCII_ID_PART: Final = _ASCII_ID_START | frozenset("0123456789")

_SUPPORTED_OPERATORS: Final = frozenset(
    "=== !== == != <= >= < > && || ?? ?. + - * / % ! ? : . , ( ) [ ] { }".split()
)
_ASSIGNMENT: Final = "assignment is not supported (use '===' to compare)"
_BITWISE: Final = "bitwise operators are not supported"
_UNSUPPORTED_OPERATORS: Final[dict[str, str]] = {
    **dict.fromkeys(
        "= += -= *= /= %= **= <<= >>= >>>= &= |= ^= &&= ||= ??=".split(),
        _ASSIGNMENT,
    ),
    "++": "increment and decrement operators are not supported",
    "--": "increment and decrement operators are not supported",
    "=>": "arrow functions are not supported",
    "**": "the exponentiation operator '**' is not supported",
    **dict.fromkeys("& | ^ ~ << >> >>>".split(), _BITWISE),
    "...": "spread syntax is not supported",
    ";": "statements are not supported; write a single expression without ';'",
}
_OPERATORS: Final = _SUPPORTED_OPERATORS | frozenset(_UNSUPPORTED_OPERATORS)

_VALUE_WORDS: Final[dict[str, Any]] = {
    "true": True,
    "false": False,
    "null": None,
    "undefined": None,
    "NaN": _NAN,
    "Infinity": _INF,
}
_RESERVED_WORDS: Final = frozenset(
    "break case catch class const continue debugger default delete do else enum export extends false "
    "finally for function if import in instanceof new null return super switch this throw true try "
    "typeof var void while with".split()
)
_KEYWORD_MESSAGES: Final[dict[str, str]] = {
    "new": "the 'new' operator is not supported",
    "function": "function expressions are not supported",
    "class": "class expressions are not supported",
    "this": "'this' is not supported",
    "delete": "the 'delete' operator is not supported",
    "void": "the 'void' operator is not supported",
    "import": "'import' is not supported",
    "super": "'super' is not supported",
}

_NUMBER_RE: Final = re.compile(
    r"(?P<hex>0[xX][0-9a-fA-F]+)|(?P<oct>0[oO][0-7]+)|(?P<bin>0[bB][01]+)"
    r"|(?P<decimal>(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"
)
_HEX4_RE: Final = re.compile(r"[0-9a-fA-F]{4}")
_HEX2_RE: Final = re.compile(r"[0-9a-fA-F]{2}")
_HEX_RUN_RE: Final = re.compile(r"[0-9a-fA-F]{1,8}")
_SIMPLE_ESCAPES: Final = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "b": "\b",
    "f": "\f",
    "v": "\v",
    "'": "'",
    '"': '"',
    "\\": "\\",
}


def _is_identifier_start(ch: str) -> bool:
    return ch in _ASCII_ID_START or (ch > "\x7f" and ch.isidentifier())


def _is_identifier_part(ch: str) -> bool:
    return ch in _ASCII_ID_PART or (ch > "\x7f" and (("a" + ch).isidentifier() or ch in "\u200c\u200d"))


def _is_op(token: _Token, value: str) -> bool:
    return token.kind == "op" and token.value == value


def _is_dot(token: _Token) -> bool:
    return token.kind == "op" and (token.value == "." or token.value == "?.")


def _is_chain_part(token: _Token) -> bool:
    """Whether ``token`` can follow a hyphen in a hyphenated name (``check-status``, ``step-1``)."""
    return token.kind == "name" or (token.kind == "num" and token.raw.isascii() and token.raw.isdigit())


def _after_tight_hyphen(tokens: list[_Token], space: bool) -> bool:
    return (
        not space
        and len(tokens) >= 2
        and _is_op(tokens[-1], "-")
        and not tokens[-1].space_before
        and _is_chain_part(tokens[-2])
    )


def _skip_space(source: str, index: int) -> int:
    length = len(source)
    while index < length:
        ch = source[index]
        if ch in _JS_SPACES or (ch > "\x7f" and unicodedata.category(ch) == "Zs"):
            index += 1
        elif source.startswith("//", index):
            index += 2
            while index < length and source[index] not in _LINE_TERMINATORS:
                index += 1
        elif source.startswith("/*", index):
            end = source.find("*/", index + 2)
            if end < 0:
                _fail("unterminated comment", source, index)
            index = end + 2
        else:
            break
    return index


def _tokenize(source: str) -> list[_Token]:
    tokens: list[_Token] = []
    length = len(source)
    index = 0
    while True:
        skipped_from = index
        index = _skip_space(source, index)
        space = index > skipped_from or not tokens
        if index >= length:
            tokens.append(_Token("eof", None, length, length, space, ""))
            return tokens
        ch = source[index]
        kind: str
        value: Any
        if ch == '"' or ch == "'":
            kind = "str"
            value, end = _scan_string(source, index)
        elif "0" <= ch <= "9" or (ch == "." and index + 1 < length and "0" <= source[index + 1] <= "9"):
            kind, value, end = _scan_number(source, index, _after_tight_hyphen(tokens, space))
        elif _is_identifier_start(ch):
            end = index + 1
            while end < length and _is_identifier_part(source[end]):
                end += 1
            kind, value = "name", source[index:end]
        else:
            kind = "op"
            value, end = _scan_operator(source, index, tokens)
        tokens.append(_Token(kind, value, index, end, space, source[index:end]))
        index = end


def _scan_operator(source: str, index: int, tokens: list[_Token]) -> tuple[str, int]:
    for size in (4, 3, 2, 1):
        candidate = source[index : index + size]
        if len(candidate) == size and candidate in _OPERATORS:
            break
    else:
        ch = source[index]
        if ch == "`":
            _fail("template literals are not supported", source, index)
        if ch == "\\":
            _fail("unexpected backslash (escapes are only allowed inside strings)", source, index)
        _fail(f"unexpected character {ch!r}", source, index)
    if candidate == "?." and "0" <= source[index + 2 : index + 3] <= "9" and index + 2 < len(source):
        candidate = "?"  # `a?.5:1` is a conditional, as in JavaScript
    message = _UNSUPPORTED_OPERATORS.get(candidate)
    if message is not None:
        _fail(message, source, index)
    if candidate == "/" and _operand_expected(tokens):
        _fail("regular expression literals are not supported", source, index)
    return candidate, index + len(candidate)


def _operand_expected(tokens: list[_Token]) -> bool:
    if not tokens:
        return True
    previous = tokens[-1]
    if previous.kind == "op":
        return previous.value not in (")", "]", "}")
    if previous.kind == "name":
        return previous.value in _RESERVED_WORDS and previous.value not in _VALUE_WORDS
    return False


def _scan_number(source: str, index: int, tight: bool) -> tuple[str, Any, int]:
    length = len(source)
    match = _NUMBER_RE.match(source, index)
    if match is None:  # pragma: no cover - the caller checked for a digit
        _fail("invalid number", source, index)
    text = match.group()
    end = match.end()
    value: int | float
    if match.lastgroup == "decimal":
        if text.endswith(".") and end < length and _is_identifier_start(source[end]):
            text, end = text[:-1], end - 1  # `step-1.output`: the dot is a member access
        if tight and text.isdigit() and end < length and _is_identifier_part(source[end]):
            while end < length and _is_identifier_part(source[end]):
                end += 1
            return "name", source[index:end], end  # `step-2b`: only usable as part of a hyphenated name
        if len(text) > 1 and text[0] == "0" and text[1].isdigit() and not tight:
            _fail("numbers with leading zeros (legacy octal literals) are not supported", source, index)
        if "." in text or "e" in text or "E" in text:
            value = float(text)
        else:
            try:
                value = int(text)
            except ValueError:  # more digits than int() accepts
                value = float(text)
    else:
        value = int(text[2:], {"hex": 16, "oct": 8, "bin": 2}[match.lastgroup or "hex"])
    if end < length and (_is_identifier_start(source[end]) or "0" <= source[end] <= "9"):
        _fail("an identifier or digit cannot directly follow a number", source, end)
    return "num", value, end


def _scan_string(source: str, start: int) -> tuple[str, int]:
    quote = source[start]
    length = len(source)
    chunks: list[str] = []
    index = start + 1
    while True:
        if index >= length:
            _fail("unterminated string literal", source, start)
        ch = source[index]
        if ch == quote:
            return _join_surrogates("".join(chunks)), index + 1
        if ch == "\n" or ch == "\r":
            _fail("unterminated string literal (strings cannot contain line breaks)", source, start)
        if ch != "\\":
            chunks.append(ch)
            index += 1
            continue
        if index + 1 >= length:
            _fail("unterminated string literal", source, start)
        escape = source[index + 1]
        following = source[index + 2 : index + 3]
        if escape in _SIMPLE_ESCAPES:
            chunks.append(_SIMPLE_ESCAPES[escape])
            index += 2
        elif escape == "0" and not ("0" <= following <= "9" and following):
            chunks.append("\0")
            index += 2
        elif "0" <= escape <= "7":
            _fail("octal escape sequences are not supported", source, index)
        elif escape == "x":
            digits = source[index + 2 : index + 4]
            if not _HEX2_RE.fullmatch(digits):
                _fail("invalid \\x escape sequence (expected two hexadecimal digits)", source, index)
            chunks.append(chr(int(digits, 16)))
            index += 4
        elif escape == "u":
            code, index = _scan_unicode_escape(source, index)
            chunks.append(chr(code))
        elif escape == "\r":
            index += 3 if following == "\n" else 2  # line continuation
        elif escape in _LINE_TERMINATORS:
            index += 2
        else:
            chunks.append(escape)  # identity escape, as in sloppy-mode JavaScript
            index += 2


def _scan_unicode_escape(source: str, index: int) -> tuple[int, int]:
    """Decode ``\\uXXXX`` or ``\\u{X...}`` starting at the backslash; return (code point, next index)."""
    if source.startswith("{", index + 2):
        close = source.find("}", index + 3)
        digits = source[index + 3 : close] if close > 0 else ""
        if not _HEX_RUN_RE.fullmatch(digits) or int(digits, 16) > 0x10FFFF:
            _fail("invalid \\u{...} escape sequence", source, index)
        return int(digits, 16), close + 1
    digits = source[index + 2 : index + 6]
    if not _HEX4_RE.fullmatch(digits):
        _fail("invalid \\u escape sequence (expected four hexadecimal digits)", source, index)
    return int(digits, 16), index + 6


def _join_surrogates(text: str) -> str:
    """Combine UTF-16 surrogate pairs written as escapes (``\\ud83d\\ude00``) into one character."""
    if not any("\ud800" <= ch <= "\udfff" for ch in text):
        return text
    out: list[str] = []
    index = 0
    while index < len(text):
        ch = text[index]
        low = text[index + 1 : index + 2]
        if "\ud800" <= ch <= "\udbff" and low and "\udc00" <= low <= "\udfff":
            out.append(chr(0x10000 + ((ord(ch) - 0xD800) << 10) + (ord(low) - 0xDC00)))
            index += 2
        else:
            out.append(ch)
            index += 1
    return "".join(out)


# --------------------------------------------------------------------------------------------------
# Syntax tree
# --------------------------------------------------------------------------------------------------


class _Node:
    __slots__ = ("depth",)
    depth: int


class _Literal(_Node):
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value
        self.depth = 1


class _Name(_Node):
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name
        self.depth = 1


class _Member(_Node):
    """``obj`` followed by property accesses; each step is ``(False, name)`` or ``(True, key node)``."""

    __slots__ = ("obj", "steps")

    def __init__(self, obj: _Node, steps: tuple[tuple[bool, Any], ...]) -> None:
        self.obj = obj
        self.steps = steps
        self.depth = 1 + max([obj.depth, *(arg.depth for is_index, arg in steps if is_index)])


class _Unary(_Node):
    __slots__ = ("op", "operand")

    def __init__(self, op: str, operand: _Node) -> None:
        self.op = op
        self.operand = operand
        self.depth = 1 + operand.depth


class _Binary(_Node):
    """A left-associative run of operators of one precedence: ``operands[0] ops[0] operands[1] ...``."""

    __slots__ = ("operands", "ops", "precedence")

    def __init__(self, precedence: int, ops: tuple[str, ...], operands: tuple[_Node, ...]) -> None:
        self.precedence = precedence
        self.ops = ops
        self.operands = operands
        self.depth = 1 + max(operand.depth for operand in operands)


class _Conditional(_Node):
    """``c1 ? v1 : c2 ? v2 : otherwise``, flattened."""

    __slots__ = ("branches", "otherwise")

    def __init__(self, branches: tuple[tuple[_Node, _Node], ...], otherwise: _Node) -> None:
        self.branches = branches
        self.otherwise = otherwise
        self.depth = 1 + max([otherwise.depth, *(max(c.depth, v.depth) for c, v in branches)])


class _ArrayLiteral(_Node):
    __slots__ = ("items",)

    def __init__(self, items: tuple[_Node, ...]) -> None:
        self.items = items
        self.depth = 1 + max((item.depth for item in items), default=0)


class _ObjectLiteral(_Node):
    __slots__ = ("entries",)

    def __init__(self, entries: tuple[tuple[str, _Node], ...]) -> None:
        self.entries = entries
        self.depth = 1 + max((value.depth for _, value in entries), default=0)


# --------------------------------------------------------------------------------------------------
# Parser (precedence climbing)
# --------------------------------------------------------------------------------------------------

_NULLISH, _OR, _AND, _EQUALITY, _RELATIONAL, _ADDITIVE, _MULTIPLICATIVE = range(2, 9)
_BINARY_PRECEDENCE: Final[dict[str, int]] = {
    "??": _NULLISH,
    "||": _OR,
    "&&": _AND,
    **dict.fromkeys(("==", "!=", "===", "!=="), _EQUALITY),
    **dict.fromkeys(("<", "<=", ">", ">="), _RELATIONAL),
    **dict.fromkeys(("+", "-"), _ADDITIVE),
    **dict.fromkeys(("*", "/", "%"), _MULTIPLICATIVE),
}


def _describe(token: _Token) -> str:
    if token.kind == "eof":
        return "end of expression"
    if token.kind == "op":
        return f"'{token.value}'"
    if token.kind == "name":
        return f"keyword '{token.value}'" if token.value in _RESERVED_WORDS else f"identifier '{token.value}'"
    raw = token.raw if len(token.raw) <= 24 else token.raw[:21] + "..."
    return f"{'number' if token.kind == 'num' else 'string'} {raw}"


class _Parser:
    def __init__(self, tokens: Sequence[_Token], source: str) -> None:
        self._tokens = tokens
        self._source = source
        self._index = 0
        self._nesting = 0

    def parse(self) -> _Node:
        node = self._parse_expression()
        token = self._peek()
        if token.kind != "eof":
            if _is_op(token, ","):
                self._error("comma expressions are not supported", token)
            if token.kind == "op" and token.value in ")]}":
                self._error(f"unmatched '{token.value}'", token)
            self._error(f"unexpected {_describe(token)} after a complete expression", token)
        return node

    # -- helpers ----------------------------------------------------------------------------------

    def _peek(self) -> _Token:
        return self._tokens[self._index]

    def _advance(self) -> _Token:
        token = self._tokens[self._index]
        self._index += 1
        return token

    def _error(self, message: str, token: _Token) -> NoReturn:
        _fail(message, self._source, token.pos)

    def _enter(self, token: _Token) -> None:
        self._nesting += 1
        if self._nesting > MAX_NESTING_DEPTH:
            self._error(f"expression is nested too deeply (more than {MAX_NESTING_DEPTH} levels)", token)

    def _leave(self) -> None:
        self._nesting -= 1

    def _checked(self, node: _Node, token: _Token) -> _Node:
        if node.depth > MAX_NESTING_DEPTH:
            self._error(f"expression is nested too deeply (more than {MAX_NESTING_DEPTH} levels)", token)
        return node

    def _expect_close(self, closer: str, opener: _Token) -> None:
        token = self._peek()
        if _is_op(token, closer):
            self._advance()
            return
        if _is_op(token, ",") and closer == ")":
            self._error("comma expressions are not supported", token)
        where = f"'{opener.value}' at column {opener.pos + 1}"
        self._error(f"expected '{closer}' to close {where}, found {_describe(token)}", token)

    def _expected_operand(self) -> NoReturn:
        token = self._peek()
        previous = self._tokens[self._index - 1] if self._index else None
        after = f" after '{previous.raw}'" if previous is not None else ""
        if token.kind == "eof":
            self._error(f"unexpected end of expression: expected an operand{after}", token)
        self._error(f"unexpected {_describe(token)}: expected an operand{after}", token)

    # -- grammar ----------------------------------------------------------------------------------

    def _parse_expression(self) -> _Node:
        """Conditional level: ``a ? b : c ? d : e`` becomes one flat node."""
        start = self._peek()
        branches: list[tuple[_Node, _Node]] = []
        while True:
            condition = self._parse_binary(0)
            question = self._peek()
            if not _is_op(question, "?"):
                break
            self._advance()
            self._enter(question)
            consequent = self._parse_expression()
            self._leave()
            colon = self._peek()
            if not _is_op(colon, ":"):
                self._error(f"expected ':' in conditional expression, found {_describe(colon)}", colon)
            self._advance()
            branches.append((condition, consequent))
        if not branches:
            return condition
        return self._checked(_Conditional(tuple(branches), condition), start)

    def _binary_operator(self) -> tuple[str | None, int, _Token]:
        token = self._peek()
        if token.kind == "op":
            precedence = _BINARY_PRECEDENCE.get(token.value)
            if precedence is not None:
                return token.value, precedence, token
        elif token.kind == "name":
            if token.value == "in":
                return "in", _RELATIONAL, token
            if token.value == "instanceof":
                self._error("the 'instanceof' operator is not supported", token)
        return None, 0, token

    def _parse_binary(self, min_precedence: int) -> _Node:
        left = self._parse_unary()
        op, precedence, token = self._binary_operator()
        while op is not None and precedence > min_precedence:
            group, first = precedence, token
            ops: list[str] = []
            operands = [left]
            while op is not None and precedence == group:
                self._advance()
                self._enter(token)
                operands.append(self._parse_binary(group))
                self._leave()
                ops.append(op)
                op, precedence, token = self._binary_operator()
            left = self._checked(_Binary(group, tuple(ops), tuple(operands)), first)
        return left

    def _parse_unary(self) -> _Node:
        token = self._peek()
        if (token.kind == "op" and token.value in ("!", "-", "+")) or (
            token.kind == "name" and token.value == "typeof"
        ):
            self._advance()
            self._enter(token)
            operand = self._parse_unary()
            self._leave()
            if token.value == "-" and isinstance(operand, _Literal) and type(operand.value) in (int, float):
                return _Literal(-operand.value)  # fold negative number literals
            return self._checked(_Unary(token.value, operand), token)
        return self._parse_postfix()

    def _parse_postfix(self) -> _Node:
        node = self._parse_primary()
        steps: list[tuple[bool, Any]] = []
        start = self._peek()
        while True:
            token = self._peek()
            if _is_op(token, ".") or _is_op(token, "?."):
                self._advance()
                following = self._peek()
                if token.value == "?." and _is_op(following, "["):
                    self._advance()
                    steps.append((True, self._parse_index(following)))
                elif _is_op(following, "("):
                    self._error("function calls are not supported", following)
                elif following.kind == "name":
                    self._advance()
                    steps.append((False, following.value))
                else:
                    found = _describe(following)
                    self._error(f"expected a property name after '{token.value}', found {found}", following)
            elif _is_op(token, "["):
                self._advance()
                steps.append((True, self._parse_index(token)))
            elif _is_op(token, "("):
                self._error("function calls are not supported", token)
            else:
                break
        if not steps:
            return node
        return self._checked(_Member(node, tuple(steps)), start)

    def _parse_index(self, opener: _Token) -> _Node:
        self._enter(opener)
        if _is_op(self._peek(), "]"):
            self._error("expected an expression inside '[]'", self._peek())
        key = self._parse_expression()
        self._expect_close("]", opener)
        self._leave()
        return key

    def _parse_primary(self) -> _Node:
        token = self._peek()
        if token.kind == "num" or token.kind == "str":
            self._advance()
            return _Literal(token.value)
        if token.kind == "name":
            word = token.value
            if word in _VALUE_WORDS:
                self._advance()
                return _Literal(_VALUE_WORDS[word])
            if word in _RESERVED_WORDS:
                self._error(_KEYWORD_MESSAGES.get(word, f"unexpected keyword '{word}'"), token)
            if word[0].isdigit():
                self._error(f"invalid name '{word}'", token)
            self._advance()
            return _Name(word)
        if _is_op(token, "("):
            self._advance()
            self._enter(token)
            if _is_op(self._peek(), ")"):
                self._error("empty parentheses '()' are not an expression", token)
            node = self._parse_expression()
            self._expect_close(")", token)
            self._leave()
            return node
        if _is_op(token, "["):
            return self._parse_array(token)
        if _is_op(token, "{"):
            return self._parse_object(token)
        self._expected_operand()

    def _parse_array(self, opener: _Token) -> _Node:
        self._advance()
        self._enter(opener)
        items: list[_Node] = []
        while not _is_op(self._peek(), "]"):
            if _is_op(self._peek(), ","):
                self._error("empty array elements are not supported", self._peek())
            items.append(self._parse_expression())
            if not _is_op(self._peek(), ","):
                break
            self._advance()
        self._expect_close("]", opener)
        self._leave()
        return self._checked(_ArrayLiteral(tuple(items)), opener)

    def _parse_object(self, opener: _Token) -> _Node:
        self._advance()
        self._enter(opener)
        entries: list[tuple[str, _Node]] = []
        while not _is_op(self._peek(), "}"):
            token = self._advance()
            value: _Node | None = None
            if token.kind == "name":
                key = token.value
                following = self._peek()
                if _is_op(following, ",") or _is_op(following, "}"):
                    if key in _RESERVED_WORDS or key in _VALUE_WORDS or key[0].isdigit():
                        self._error(f"'{key}' cannot be used as a shorthand property", token)
                    value = _Name(key)  # `{a}` means `{a: a}`
                elif _is_op(following, "("):
                    self._error("methods in object literals are not supported", following)
            elif token.kind == "str":
                key = token.value
            elif token.kind == "num":
                key = _to_string(token.value)
            elif _is_op(token, "["):
                self._error("computed property names are not supported", token)
            else:
                self._error(f"expected a property name in object literal, found {_describe(token)}", token)
            if value is None:
                colon = self._peek()
                if not _is_op(colon, ":"):
                    self._error(f"expected ':' after property name, found {_describe(colon)}", colon)
                self._advance()
                value = self._parse_expression()
            entries.append((key, value))
            if not _is_op(self._peek(), ","):
                break
            self._advance()
        self._expect_close("}", opener)
        self._leave()
        return self._checked(_ObjectLiteral(tuple(entries)), opener)


# --------------------------------------------------------------------------------------------------
# JavaScript value semantics
# --------------------------------------------------------------------------------------------------

_UNDEFINED, _BOOLEAN, _NUMBER, _STRING, _OBJECT = range(5)
_TYPE_CODES: Final[dict[type, int]] = {
    type(None): _UNDEFINED,
    bool: _BOOLEAN,
    int: _NUMBER,
    float: _NUMBER,
    str: _STRING,
    list: _OBJECT,
    dict: _OBJECT,
    tuple: _OBJECT,
}
_TYPEOF_NAMES: Final = ("undefined", "boolean", "number", "string", "object")
_JS_STRIP: Final = "".join(sorted(_JS_SPACES))
_NUMERIC_STRING_RE: Final = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_ARRAY_INDEX_RE: Final = re.compile(r"0|[1-9][0-9]{0,17}")
_INTEGER_KEY_RE: Final = re.compile(r"-?(?:0|[1-9][0-9]{0,17})")


def _js_type(value: Any) -> int:
    code = _TYPE_CODES.get(type(value))
    if code is not None:
        return code
    if isinstance(value, (int, float)):
        return _NUMBER
    if isinstance(value, str):
        return _STRING
    return _OBJECT


def is_truthy(value: Any) -> bool:
    """JavaScript truthiness: ``None``, ``False``, ``0``, ``-0.0``, ``NaN`` and ``""`` are falsy, the
    rest - including ``[]`` and ``{}`` - is truthy."""
    if value is None or value is False:
        return False
    if value is True:
        return True
    kind = type(value)
    if kind is str:
        return len(value) > 0
    if kind is int:
        return bool(value != 0)
    if kind is float:
        return bool(value == value and value != 0.0)
    if kind is list or kind is dict:
        return True
    if isinstance(value, str):
        return len(value) > 0
    if isinstance(value, (int, float)):
        return bool(value == value and value != 0)
    return True


def _string_to_number(text: str) -> int | float:
    """JavaScript ``Number(text)``: ``int`` for integer text, ``float`` otherwise, NaN if not numeric."""
    stripped = text.strip(_JS_STRIP)
    if not stripped:
        return 0
    if _NUMERIC_STRING_RE.fullmatch(stripped):
        if "." in stripped or "e" in stripped or "E" in stripped:
            return float(stripped)
        try:
            return int(stripped)
        except ValueError:  # too many digits for int()
            return float(stripped)
    if len(stripped) > 2 and stripped[0] == "0" and stripped[1] in "xXoObB":
        base = {"x": 16, "o": 8, "b": 2}[stripped[1].lower()]
        digits = stripped[2:]
        if digits.isascii() and digits.isalnum() and all(int(d, 36) < base for d in digits):
            return int(digits, base)
        return _NAN
    if stripped in ("Infinity", "+Infinity"):
        return _INF
    if stripped == "-Infinity":
        return -_INF
    return _NAN


def _to_number(value: Any) -> int | float | None:
    """Numeric value of an operand (``bool`` as 0/1, numeric strings converted), else ``None``."""
    kind = type(value)
    if kind is int or kind is float:
        return value  # type: ignore[no-any-return]
    if kind is bool:
        return int(value)
    if kind is str:
        number = _string_to_number(value)
        return None if number != number else number
    code = _js_type(value)
    if code == _NUMBER:
        return int(value) if isinstance(value, int) else float(value)
    if code == _STRING:
        return _to_number(str.__str__(value))
    return None


def _to_float(value: int | float) -> float:
    if type(value) is float:
        return value
    try:
        return float(value)
    except OverflowError:
        return _INF if value > 0 else -_INF


def _number_to_string(value: int | float) -> str:
    """JavaScript ``Number.prototype.toString()``; Python ints are written exactly."""
    if type(value) is int:
        try:
            return str(value)
        except ValueError:  # more digits than str() allows
            return _number_to_string(_to_float(value))
    value = float(value)
    if value != value:
        return "NaN"
    if value == 0:
        return "0"
    if value < 0:
        return "-" + _number_to_string(-value)
    if value == _INF:
        return "Infinity"
    mantissa, _, exponent_text = repr(value).partition("e")
    exponent = int(exponent_text) if exponent_text else 0
    whole, _, fraction = mantissa.partition(".")
    if fraction == "0":
        fraction = ""
    significant = (whole + fraction).lstrip("0")
    digits = significant.rstrip("0")
    k = len(digits)
    n = k + exponent - len(fraction) + (len(significant) - k)  # value = 0.digits * 10**n
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * -n + digits
    sign = "+" if n - 1 >= 0 else "-"
    head = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{head}e{sign}{abs(n - 1)}"


def _to_string(value: Any, seen: set[int] | None = None) -> str:
    """JavaScript ``String(value)`` (``None`` is ``"null"``)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    code = _js_type(value)
    if code == _STRING:
        return value if type(value) is str else str.__str__(value)
    if code == _NUMBER:
        return _number_to_string(value)
    if isinstance(value, (list, tuple)):
        seen = set() if seen is None else seen
        if id(value) in seen:
            return ""  # a cycle, as Array.prototype.join treats it
        seen.add(id(value))
        text = ",".join("" if item is None else _to_string(item, seen) for item in value)
        seen.discard(id(value))
        return text
    return "[object Object]"


def _utf16(text: str) -> bytes:
    return text.encode("utf-16-be", "surrogatepass")


def _string_length(text: str) -> int:
    return len(text) if text.isascii() else len(_utf16(text)) // 2


def _string_at(text: str, index: int) -> str | None:
    if text.isascii():
        return text[index] if index < len(text) else None
    units = _utf16(text)
    if 2 * index + 2 > len(units):
        return None
    return units[2 * index : 2 * index + 2].decode("utf-16-be", "surrogatepass")


def _array_index(key: Any) -> int | None:
    kind = type(key)
    if kind is int:
        return key if key >= 0 else None
    if kind is float:
        return int(key) if key.is_integer() and key >= 0 else None
    if kind is str:
        return int(key) if _ARRAY_INDEX_RE.fullmatch(key) else None
    if kind is not bool and _js_type(key) in (_NUMBER, _STRING):
        return _array_index(_to_number(key) if _js_type(key) == _NUMBER else str.__str__(key))
    return None


def _integer_key(key: Any, text: str) -> int | None:
    if type(key) is int:
        return key
    if type(key) is float and key.is_integer():
        return int(key)
    if _INTEGER_KEY_RE.fullmatch(text):
        return int(text)
    return None


def _get_named(obj: Any, name: str) -> Any:
    """``obj.name`` for a name written in the source."""
    kind = type(obj)
    if kind is dict:
        return obj.get(name)
    if obj is None or kind is int or kind is float or kind is bool:
        return None
    if kind is list or kind is tuple or kind is str:
        return (len(obj) if kind is not str else _string_length(obj)) if name == "length" else None
    if isinstance(obj, Mapping):
        return obj.get(name)
    if name == "length":
        if isinstance(obj, (list, tuple)):
            return len(obj)
        if isinstance(obj, str):
            return _string_length(obj)
    return None


def _get_item(obj: Any, key: Any) -> Any:
    """``obj[key]`` for a computed key."""
    if obj is None:
        return None
    if type(obj) is dict or isinstance(obj, Mapping):
        text = key if type(key) is str else _to_string(key)
        value = obj.get(text, _MISSING)
        if value is not _MISSING:
            return value
        integer = _integer_key(key, text)
        return None if integer is None else obj.get(integer)
    if isinstance(obj, (list, tuple, str)):
        index = _array_index(key)
        if index is None:
            return _get_named(obj, key) if type(key) is str else None
        if isinstance(obj, str):
            return _string_at(obj, index)
        return obj[index] if index < len(obj) else None
    return None


def _has_key(obj: Any, name: str) -> bool:
    return isinstance(obj, Mapping) and name in obj


def _op_in(key: Any, obj: Any) -> bool:
    if isinstance(obj, Mapping):
        text = key if type(key) is str else _to_string(key)
        if text in obj:
            return True
        integer = _integer_key(key, text)
        return integer is not None and integer in obj
    if isinstance(obj, (list, tuple)):
        index = _array_index(key)
        if index is not None:
            return index < len(obj)
        return key == "length" and type(key) is str
    return False


def _typeof(value: Any) -> str:
    return _TYPEOF_NAMES[_js_type(value)]


def _strict_equals(left: Any, right: Any) -> bool:
    kind = type(left)
    if kind is type(right):
        if kind is str or kind is int or kind is float or kind is bool or left is None:
            return bool(left == right)
        return left is right
    code = _js_type(left)
    if code != _js_type(right):
        return False
    if code == _OBJECT:
        return left is right
    return bool(left == right)


def _loose_equals(left: Any, right: Any) -> bool:
    left_code, right_code = _js_type(left), _js_type(right)
    if left_code == right_code:
        return _strict_equals(left, right)
    if left_code == _UNDEFINED or right_code == _UNDEFINED:
        return False
    if left_code == _BOOLEAN:
        return _loose_equals(int(left), right)
    if right_code == _BOOLEAN:
        return _loose_equals(left, int(right))
    if left_code == _NUMBER and right_code == _STRING:
        return bool(left == _string_to_number(right))
    if left_code == _STRING and right_code == _NUMBER:
        return bool(_string_to_number(left) == right)
    return False


def _compare_strings(compare: Callable[[Any, Any], bool], left: str, right: str) -> bool:
    if left.isascii() and right.isascii():
        return compare(left, right)
    return compare(_utf16(left), _utf16(right))  # JavaScript compares UTF-16 code units


def _relational(compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def operator(left: Any, right: Any) -> bool:
        left_kind, right_kind = type(left), type(right)
        if (left_kind is int or left_kind is float) and (right_kind is int or right_kind is float):
            return compare(left, right)
        if left_kind is str and right_kind is str:
            return _compare_strings(compare, left, right)
        left_code, right_code = _js_type(left), _js_type(right)
        if left_code == _STRING and right_code == _STRING:
            return _compare_strings(compare, str.__str__(left), str.__str__(right))
        if left_code in (_UNDEFINED, _OBJECT) or right_code in (_UNDEFINED, _OBJECT):
            return False
        a, b = _to_number(left), _to_number(right)
        return a is not None and b is not None and compare(a, b)

    return operator


def _op_add(left: Any, right: Any) -> Any:
    left_kind, right_kind = type(left), type(right)
    if left_kind is right_kind and (left_kind is int or left_kind is str or left_kind is float):
        return left + right
    left_code, right_code = _js_type(left), _js_type(right)
    if left_code == _STRING or right_code == _STRING:
        return _to_string(left) + _to_string(right)
    if left_code in (_NUMBER, _BOOLEAN) and right_code in (_NUMBER, _BOOLEAN):
        a, b = _to_number(left), _to_number(right)
        if a is None or b is None:  # pragma: no cover - numbers and booleans always convert
            return None
        if type(a) is int and type(b) is int:
            return a + b
        return _to_float(a) + _to_float(b)
    return None


def _op_subtract(left: Any, right: Any) -> Any:
    a, b = _to_number(left), _to_number(right)
    if a is None or b is None:
        return None
    if type(a) is int and type(b) is int:
        return a - b
    return _to_float(a) - _to_float(b)


def _op_multiply(left: Any, right: Any) -> Any:
    a, b = _to_number(left), _to_number(right)
    if a is None or b is None:
        return None
    if type(a) is int and type(b) is int and a.bit_length() + b.bit_length() <= _MAX_EXACT_PRODUCT_BITS:
        return a * b
    return _to_float(a) * _to_float(b)


def _op_divide(left: Any, right: Any) -> Any:
    a, b = _to_number(left), _to_number(right)
    if a is None or b is None:
        return None
    if b == 0:
        if a != a or a == 0:
            return _NAN
        negative = (a < 0) != (type(b) is float and math.copysign(1.0, b) < 0)
        return -_INF if negative else _INF
    if type(a) is int and type(b) is int:
        if a % b == 0:
            return a // b
        try:
            return a / b
        except OverflowError:
            return -_INF if (a < 0) != (b < 0) else _INF
    return _to_float(a) / _to_float(b)


def _op_remainder(left: Any, right: Any) -> Any:
    a, b = _to_number(left), _to_number(right)
    if a is None or b is None:
        return None
    if type(a) is int and type(b) is int:
        if b == 0:
            return _NAN
        remainder = abs(a) % abs(b)
        return -remainder if a < 0 else remainder
    x, y = _to_float(a), _to_float(b)
    if y == 0 or x != x or y != y or math.isinf(x):
        return _NAN
    if math.isinf(y):
        return x
    return math.fmod(x, y)


def _op_negate(value: Any) -> Any:
    number = _to_number(value)
    return None if number is None else -number


_BINARY_FUNCTIONS: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "+": _op_add,
    "-": _op_subtract,
    "*": _op_multiply,
    "/": _op_divide,
    "%": _op_remainder,
    "<": _relational(lambda a, b: a < b),
    "<=": _relational(lambda a, b: a <= b),
    ">": _relational(lambda a, b: a > b),
    ">=": _relational(lambda a, b: a >= b),
    "in": _op_in,
    "===": _strict_equals,
    "!==": lambda a, b: not _strict_equals(a, b),
    "==": _loose_equals,
    "!=": lambda a, b: not _loose_equals(a, b),
}


# --------------------------------------------------------------------------------------------------
# Compiler: syntax tree -> nested closures
# --------------------------------------------------------------------------------------------------


def _compile(node: _Node) -> Evaluator:
    if isinstance(node, _Literal):
        value = node.value
        return lambda scope: value
    if isinstance(node, _Name):
        name = node.name
        return lambda scope: scope.get(name)
    if isinstance(node, _Member):
        return _compile_member(node)
    if isinstance(node, _Unary):
        return _compile_unary(node)
    if isinstance(node, _Binary):
        return _compile_binary(node)
    if isinstance(node, _Conditional):
        return _compile_conditional(node)
    if isinstance(node, _ArrayLiteral):
        items = tuple(_compile(item) for item in node.items)
        return lambda scope: [item(scope) for item in items]
    if isinstance(node, _ObjectLiteral):
        entries = tuple((key, _compile(value)) for key, value in node.entries)
        return lambda scope: {key: value(scope) for key, value in entries}
    raise AssertionError(f"unknown node {type(node).__name__}")  # pragma: no cover


def _compile_path(head: str, names: tuple[str, ...]) -> Evaluator:
    """``head.n1.n2...``: property access if ``head`` is in the scope, else the dotted flat keys."""
    if len(names) == 1:
        name = names[0]
        flat_key = f"{head}.{name}"

        def one(scope: Scope) -> Any:
            value = scope.get(head, _MISSING)
            if value is _MISSING:
                return scope.get(flat_key)
            if type(value) is dict:
                return value.get(name)
            return _get_named(value, name)

        return one

    flat_keys = tuple(".".join((head, *names[: count + 1])) for count in range(len(names)))

    def many(scope: Scope) -> Any:
        value = scope.get(head, _MISSING)
        start = 0
        if value is _MISSING:
            for index, flat_key in enumerate(flat_keys):
                value = scope.get(flat_key, _MISSING)
                if value is not _MISSING:
                    start = index + 1
                    break
            else:
                return None
        for index in range(start, len(names)):
            value = _get_named(value, names[index])
        return value

    return many


def _compile_member(node: _Member) -> Evaluator:
    steps = node.steps
    if isinstance(node.obj, _Name) and not steps[0][0]:
        count = 0
        while count < len(steps) and not steps[count][0]:
            count += 1
        base = _compile_path(node.obj.name, tuple(name for _, name in steps[:count]))
        steps = steps[count:]
        if not steps:
            return base
    else:
        base = _compile(node.obj)
    compiled: tuple[tuple[bool, Any], ...] = tuple(
        (is_index, _compile(arg) if is_index else arg) for is_index, arg in steps
    )

    def member(scope: Scope) -> Any:
        value = base(scope)
        for is_index, arg in compiled:
            if value is None:
                return None
            value = _get_item(value, arg(scope)) if is_index else _get_named(value, arg)
        return value

    return member


def _compile_unary(node: _Unary) -> Evaluator:
    operand = _compile(node.operand)
    if node.op == "!":
        return lambda scope: not is_truthy(operand(scope))
    if node.op == "-":
        return lambda scope: _op_negate(operand(scope))
    if node.op == "+":
        return lambda scope: _to_number(operand(scope))
    return lambda scope: _typeof(operand(scope))


def _compile_binary(node: _Binary) -> Evaluator:
    operands = tuple(_compile(operand) for operand in node.operands)
    if node.precedence == _AND:
        return _compile_short_circuit(operands, stop_on_truthy=False)
    if node.precedence == _OR:
        return _compile_short_circuit(operands, stop_on_truthy=True)
    if node.precedence == _NULLISH:
        return _compile_nullish(operands)
    functions = tuple(_BINARY_FUNCTIONS[op] for op in node.ops)
    if len(functions) == 1:
        function = functions[0]
        left, right = operands
        last = node.operands[1]
        if isinstance(last, _Literal) and type(last.value) in (int, float, str, bool, type(None)):
            constant = last.value
            return lambda scope: function(left(scope), constant)
        return lambda scope: function(left(scope), right(scope))
    first = operands[0]
    rest = tuple(zip(functions, operands[1:], strict=True))

    def fold(scope: Scope) -> Any:
        value = first(scope)
        for function, operand in rest:
            value = function(value, operand(scope))
        return value

    return fold


def _compile_short_circuit(operands: tuple[Evaluator, ...], *, stop_on_truthy: bool) -> Evaluator:
    if len(operands) == 2:
        left, right = operands
        if stop_on_truthy:

            def either(scope: Scope) -> Any:
                value = left(scope)
                return value if is_truthy(value) else right(scope)

            return either

        def both(scope: Scope) -> Any:
            value = left(scope)
            return right(scope) if is_truthy(value) else value

        return both
    leading, last = operands[:-1], operands[-1]

    def chain(scope: Scope) -> Any:
        for operand in leading:
            value = operand(scope)
            if is_truthy(value) is stop_on_truthy:
                return value
        return last(scope)

    return chain


def _compile_nullish(operands: tuple[Evaluator, ...]) -> Evaluator:
    leading, last = operands[:-1], operands[-1]

    def nullish(scope: Scope) -> Any:
        for operand in leading:
            value = operand(scope)
            if value is not None:
                return value
        return last(scope)

    return nullish


def _compile_conditional(node: _Conditional) -> Evaluator:
    branches = tuple((_compile(test), _compile(value)) for test, value in node.branches)
    otherwise = _compile(node.otherwise)
    if len(branches) == 1:
        ((test, then),) = branches
        return lambda scope: then(scope) if is_truthy(test(scope)) else otherwise(scope)

    def conditional(scope: Scope) -> Any:
        for test, then in branches:
            if is_truthy(test(scope)):
                return then(scope)
        return otherwise(scope)

    return conditional


# --------------------------------------------------------------------------------------------------
# Hyphenated names
# --------------------------------------------------------------------------------------------------


class _Chain(NamedTuple):
    """A run ``part-part-...`` of tokens with no whitespace around the hyphens."""

    first: int  # token index of the first part; parts are at first, first + 2, ..., last
    last: int
    parts: tuple[str, ...]
    heads: tuple[bool, ...]  # whether each part, alone, is an identifier that can start a path
    member: bool  # the chain follows '.' or '?.'
    prefix: tuple[tuple[bool, Any], ...] | None  # for members: (False, name) or (True, chain index)
    after: tuple[str, ...]  # plain `.name`s following the chain (for dotted flat keys)


def _find_chains(tokens: Sequence[_Token]) -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        last = index
        if token.kind == "name" and not token.value[0].isdigit():
            while (
                _is_op(tokens[last + 1], "-")
                and not tokens[last + 1].space_before
                and not tokens[last + 2].space_before
                and _is_chain_part(tokens[last + 2])
            ):
                last += 2
        if last > index:
            ranges.append((index, last))
        index = last + 1
    return ranges


def _must_join(tokens: Sequence[_Token], first: int, last: int) -> bool:
    """Chains that cannot be read as a subtraction (``new-order``, ``step-2b``, object keys)."""
    for index in range(first, last + 1, 2):
        token = tokens[index]
        if token.kind == "name" and (
            (token.value in _RESERVED_WORDS and token.value not in _VALUE_WORDS) or token.value[0].isdigit()
        ):
            return True
    before = tokens[first - 1] if first else None
    return (
        before is not None and (_is_op(before, "{") or _is_op(before, ",")) and _is_op(tokens[last + 1], ":")
    )


def _joined(tokens: Sequence[_Token], first: int, last: int) -> _Token:
    name = "".join(token.raw for token in tokens[first : last + 1])
    head = tokens[first]
    return _Token("name", name, head.pos, tokens[last].end, head.space_before, name)


def _join_ranges(tokens: Sequence[_Token], ranges: list[tuple[int, int]]) -> list[_Token]:
    out: list[_Token] = []
    position = 0
    for first, last in ranges:
        out.extend(tokens[position:first])
        out.append(_joined(tokens, first, last))
        position = last + 1
    out.extend(tokens[position:])
    return out


def _is_plain_word(word: str) -> bool:
    """Whether ``word`` alone reads as a variable (not a keyword, literal or number)."""
    return word not in _RESERVED_WORDS and word not in _VALUE_WORDS and not word[0].isdigit()


def _describe_chains(tokens: Sequence[_Token], ranges: list[tuple[int, int]]) -> tuple[_Chain, ...]:
    by_last = {last: number for number, (_, last) in enumerate(ranges)}
    starts = {first for first, _ in ranges}
    chains: list[_Chain] = []
    for first, last in ranges:
        part_tokens = tokens[first : last + 1 : 2]
        member = first > 0 and _is_dot(tokens[first - 1])
        prefix: tuple[tuple[bool, Any], ...] | None = None
        if member:
            items: list[tuple[bool, Any]] = []
            dot: int | None = first - 1
            while dot is not None:
                end = dot - 1
                if end in by_last:
                    items.append((True, by_last[end]))
                    start = ranges[by_last[end]][0]
                elif end >= 0 and tokens[end].kind == "name":
                    items.append((False, tokens[end].value))
                    start = end
                else:
                    items = []
                    break
                dot = start - 1 if start > 0 and _is_dot(tokens[start - 1]) else None
            items.reverse()
            if items and (items[0][0] or _is_plain_word(items[0][1])):
                prefix = tuple(items)
        after: list[str] = []
        index = last + 1
        while _is_dot(tokens[index]) and tokens[index + 1].kind == "name" and index + 1 not in starts:
            after.append(tokens[index + 1].value)
            index += 2
        chains.append(
            _Chain(
                first,
                last,
                tuple(token.raw for token in part_tokens),
                tuple(token.kind == "name" and _is_plain_word(token.value) for token in part_tokens),
                member,
                prefix,
                tuple(after),
            )
        )
    return tuple(chains)


def _path_reaches(scope: Scope, segments: Sequence[str], name: str, after: Sequence[str]) -> bool:
    """Whether resolving ``segments...name`` (with flat keys) would find ``name`` as a key."""
    if segments:
        value = scope.get(segments[0], _MISSING)
        if value is not _MISSING:
            for segment in segments[1:]:
                value = _get_named(value, segment)
            return _has_key(value, name)
        flat_key = segments[0]
        for index in range(1, len(segments)):
            flat_key = f"{flat_key}.{segments[index]}"
            value = scope.get(flat_key, _MISSING)
            if value is not _MISSING:
                for segment in segments[index + 1 :]:
                    value = _get_named(value, segment)
                return _has_key(value, name)
        flat_key = f"{flat_key}.{name}"
    else:
        flat_key = name
    if flat_key in scope:
        return True
    for extra in after:
        flat_key = f"{flat_key}.{extra}"
        if flat_key in scope:
            return True
    return False


Decisions = tuple[tuple[int, ...], ...]  # per chain, the index of the last part of each group


class _HyphenPlan:
    """Chooses, per scope, which hyphenated chains are names; one compiled variant per choice."""

    __slots__ = ("_chains", "_source", "_tokens", "_variants")

    def __init__(
        self, source: str, tokens: list[_Token], chains: tuple[_Chain, ...], base: Evaluator
    ) -> None:
        self._source = source
        self._tokens = tokens
        self._chains = chains
        self._variants: dict[Decisions, Evaluator] = {
            tuple(tuple(range(len(chain.parts))) for chain in chains): base
        }

    def select(self, scope: Scope) -> Evaluator:
        decisions = self._decide(scope)
        evaluator = self._variants.get(decisions)
        if evaluator is None:
            evaluator = _compile(_Parser(self._variant_tokens(decisions), self._source).parse())
            if len(self._variants) < _MAX_VARIANTS:
                self._variants[decisions] = evaluator
        return evaluator

    def _decide(self, scope: Scope) -> Decisions:
        decisions: list[tuple[int, ...]] = []
        for chain in self._chains:
            parts = chain.parts
            ends: list[int] = []
            start = 0
            while start < len(parts):
                end = len(parts) - 1
                while end > start:
                    name = "-".join(parts[start : end + 1])
                    after = chain.after if end == len(parts) - 1 else ()
                    if start == 0 and chain.member:
                        segments = self._segments(chain, decisions)
                        if segments is not None and _path_reaches(scope, segments, name, after):
                            break
                    elif _path_reaches(scope, (), name, after):
                        break
                    end -= 1
                ends.append(end)
                start = end + 1
            decisions.append(tuple(ends))
        return tuple(decisions)

    def _segments(self, chain: _Chain, decisions: list[tuple[int, ...]]) -> list[str] | None:
        """The dotted path before a member chain, given the decisions for earlier chains."""
        if chain.prefix is None:
            return None
        segments: list[str] = []
        for is_chain, item in chain.prefix:
            if not is_chain:
                segments.append(item)
                continue
            other: _Chain = self._chains[item]
            ends = decisions[item]
            if len(ends) == 1:
                segments.append("-".join(other.parts))
            else:  # split: the path restarts at the chain's last group
                start = ends[-2] + 1
                if start == len(other.parts) - 1 and not other.heads[start]:
                    return None
                segments = ["-".join(other.parts[start:])]
        return segments

    def _variant_tokens(self, decisions: Decisions) -> list[_Token]:
        tokens = self._tokens
        out: list[_Token] = []
        position = 0
        for chain, ends in zip(self._chains, decisions, strict=True):
            out.extend(tokens[position : chain.first])
            start = 0
            for end in ends:
                if start:
                    out.append(tokens[chain.first + 2 * start - 1])  # the '-' between groups
                out.append(_joined(tokens, chain.first + 2 * start, chain.first + 2 * end))
                start = end + 1
            position = chain.last + 1
        out.extend(tokens[position:])
        return out


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


def _is_mapping(value: object) -> bool:
    return isinstance(value, Mapping)


class Expression:
    """A compiled expression. Build it with :func:`compile_expression`; it is immutable and thread-safe."""

    __slots__ = ("_evaluator", "_plan", "source")

    def __init__(self, source: str, evaluator: Evaluator, plan: _HyphenPlan | None = None) -> None:
        self.source = source
        self._evaluator = evaluator
        self._plan = plan

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        """Evaluate against ``scope`` (names to values); returns plain Python data."""
        try:
            if self._plan is None:
                return self._evaluator(scope)
            return self._plan.select(scope)(scope)
        except (ExpressionError, MemoryError):
            raise
        except RecursionError as exc:
            raise ExpressionError("evaluation exceeded the recursion limit", self.source) from exc
        except Exception as exc:
            if not _is_mapping(scope):
                message = f"the scope must be a mapping, not {type(scope).__name__}"
                raise ExpressionError(message, self.source) from exc
            raise ExpressionError(f"evaluation failed: {type(exc).__name__}: {exc}", self.source) from exc

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (compile_expression, (self.source,))


def _build(source: str) -> Expression:
    if len(source) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(
            f"expression is too long ({len(source)} characters; the limit is {MAX_EXPRESSION_LENGTH})",
            source[:60] + "...",
            MAX_EXPRESSION_LENGTH,
        )
    tokens = _tokenize(source)
    if tokens[0].kind == "eof":
        _fail("expression is empty", source, 0)
    ranges = _find_chains(tokens)
    if ranges:
        joined = [(first, last) for first, last in ranges if _must_join(tokens, first, last)]
        if joined:
            tokens = _join_ranges(tokens, joined)
            ranges = _find_chains(tokens)
    evaluator = _compile(_Parser(tokens, source).parse())
    if not ranges:
        return Expression(source, evaluator)
    return Expression(
        source, evaluator, _HyphenPlan(source, tokens, _describe_chains(tokens, ranges), evaluator)
    )


@functools.lru_cache(maxsize=4096)
def _compile_cached(source: str) -> Expression:
    try:
        return _build(source)
    except ExpressionError:
        raise
    except RecursionError as exc:
        message = f"expression is nested too deeply (more than {MAX_NESTING_DEPTH} levels)"
        raise ExpressionError(message, source, 0) from exc
    except Exception as exc:  # a bug: still honour the "only ExpressionError" contract
        raise ExpressionError(f"cannot compile expression: {type(exc).__name__}: {exc}", source, 0) from exc


def compile_expression(source: str) -> Expression:
    """Parse and compile ``source`` once (cached). Raises :class:`ExpressionError` and nothing else."""
    if not isinstance(source, str):
        raise ExpressionError(f"an expression must be a string, not {type(source).__name__}")
    return _compile_cached(source)


def evaluate(source: str, scope: Mapping[str, Any]) -> Any:
    """Compile ``source`` (cached) and evaluate it against ``scope``."""
    return compile_expression(source).evaluate(scope)


def validate_expression(source: str) -> None:
    """Raise :class:`ExpressionError` if ``source`` is not a valid expression."""
    compile_expression(source)
