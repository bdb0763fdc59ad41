"""Pure-Python twin of the wire codec in ``bullflow._core`` (``rust_core/codec.rs``).

Run state lives in the Redis hash ``workflow:state:<runId>``; every field holds
``JSON.stringify(value)`` of a context value, read and written by Node.js programs too. So the text
written here is what ``JSON.stringify`` writes, and the reader accepts what ``JSON.parse`` accepts.
Same results, same errors, same messages as the Rust functions (the tests run both on the same
cases, and hypothesis looks for inputs where they differ). The decisions, shared with the Rust side:

* Writing: numbers as JavaScript's ``Number.prototype.toString`` (shortest round-trip digits,
  ``1.0`` -> ``1``, ``-0.0`` -> ``0``, decimal notation for ``1e-6 <= |x| < 1e21``, else
  ``1e+21``, ``1e-7``, ``1.5e-7``); NaN and the infinities refused; ints only in
  ``-(2**63) .. 2**64 - 1``; strings escaped like ``JSON.stringify`` (``\\u00xx`` for other
  controls, ``\\udxxx`` for lone surrogates, everything else raw UTF-8); subclasses of str, int,
  float, list, tuple and dict as their base type's value; at most 512 nested containers.
* Reading: UTF-8 only; empty input is ``None`` (Flowcraft stores ``''`` for ``undefined``), input
  of only whitespace an error; integer literals in ``-(2**63) .. 2**64 - 1`` are ints, every other
  number the nearest float, as ``JSON.parse`` reads it (so ``-0`` is the int 0 and
  ``123456789012345680000`` a float); numbers beyond a double's range are errors; an escaped
  surrogate pair is one character and a lone surrogate escape a lone surrogate; a duplicate key
  keeps its first place and takes the last value; at most 512 nested containers.

Reading runs the C-accelerated :mod:`json` decoder, guarded so that it gives exactly what the
strict reader below gives; any input it refuses, or that needs a check it cannot make, goes
through that reader, which also produces every error message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from json.encoder import encode_basestring
from typing import Any

from bullflow.exceptions import CodecError

__all__ = [
    "MAX_DEPTH",
    "decode_hash",
    "decode_hmget",
    "decode_job_payload",
    "decode_value",
    "encode_hset_args",
    "encode_job_payload",
    "encode_value",
]

MAX_DEPTH = 512
"""The deepest nesting of lists and dicts that is written or read."""

_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1
_SAFE_INT = 2.0**53
_INF = float("inf")

_JOB_PAYLOAD = "job payload: "
_JOB_PAYLOAD_FIELDS = ("runId", "blueprintId", "nodeId")
_FIELD_NAME_SURROGATE = "field name is not valid Unicode (it has a lone surrogate)"
_TOO_DEEP = f"nesting deeper than {MAX_DEPTH} levels (a circular reference?)"

_SURROGATE = re.compile("[\ud800-\udfff]")
_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")


def _codec_error(message: str, key: str | None) -> CodecError:
    """``CodecError(message, key=key)``; an empty key is no key."""
    return CodecError(message, key=key or None)


def _type_name(value: object) -> str:
    return type(value).__name__


def _check_key(key: object) -> str:
    if not isinstance(key, str):
        raise TypeError(f"key must be a str, not {_type_name(key)}")
    return key


# ---- encoding ------------------------------------------------------------------------------------


def _escape_surrogate(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def _quote(text: str) -> str:
    """``text`` as a JSON string, as ``JSON.stringify`` writes it (lone surrogates escaped)."""
    quoted = encode_basestring(text)
    if not quoted.isascii():
        quoted = _SURROGATE.sub(_escape_surrogate, quoted)
    return quoted


def _format_path(segments: list[int | str]) -> str:
    """``$`` and the segments (outermost first): ``[3]``, ``.name`` for an ASCII identifier key,
    ``["a b"]`` for any other key."""
    parts = ["$"]
    for segment in segments:
        if isinstance(segment, int):
            parts.append(f"[{segment}]")
        elif _IDENTIFIER.fullmatch(segment):
            parts.append(f".{segment}")
        else:
            parts.append(f"[{_quote(segment)}]")
    return "".join(parts)


class _Unencodable(Exception):
    """A value that cannot be encoded; each container adds its segment to ``path`` (innermost
    first) as this passes through it."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.path: list[int | str] = []

    def within(self, segment: int | str) -> None:
        if self.problem is not _TOO_DEEP:
            self.path.append(segment)

    def message(self) -> str:
        if self.problem is _TOO_DEEP:
            return self.problem
        return f"{self.problem} at {_format_path(self.path[::-1])}"


def _article(name: str) -> str:
    return "an" if name[:1] in ("a", "e", "i", "o", "u", "A", "E", "I", "O", "U") else "a"


def _number(value: float) -> str:
    """A finite float as JavaScript's ``Number.prototype.toString`` writes it."""
    if value != value:
        raise _Unencodable("cannot encode NaN")
    if value == _INF:
        raise _Unencodable("cannot encode Infinity")
    if value == -_INF:
        raise _Unencodable("cannot encode -Infinity")
    if value == 0.0:
        return "0"
    if -_SAFE_INT < value < _SAFE_INT and value.is_integer():
        return str(int(value))
    # repr gives the shortest round-trip digits, like ECMA-262 Number::toString asks.
    text = float.__repr__(value)
    sign = ""
    if text[0] == "-":
        sign = "-"
        text = text[1:]
    mantissa, _, exponent = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    if exponent:  # d[.ddd]e+XX
        digits = whole + fraction
        n = int(exponent) + 1
    elif whole != "0":  # ddd.ddd
        digits = whole + fraction
        n = len(whole)
    else:  # 0.000ddd
        digits = fraction.lstrip("0")
        n = len(digits) - len(fraction)
    digits = digits.rstrip("0")
    k = len(digits)
    # value = 0.d1d2...dk * 10**n
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return f"{sign}{digits[:n]}.{digits[n:]}"
    if -6 < n <= 0:
        return f"{sign}0.{'0' * -n}{digits}"
    exp = n - 1
    mant = digits if k == 1 else f"{digits[0]}.{digits[1:]}"
    return f"{sign}{mant}e{'+' if exp >= 0 else '-'}{abs(exp)}"


def _encode(value: Any, parts: list[str], depth: int) -> None:
    """Appends the JSON text of ``value``; ``depth`` is the number of containers around it. One
    Python frame per level of nesting."""
    kind = type(value)
    if kind is str:
        parts.append(encode_basestring(value))
    elif value is None:
        parts.append("null")
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    elif kind is int:
        if not _INT_MIN <= value <= _INT_MAX:
            raise _Unencodable("integer out of range")
        parts.append(int.__repr__(value))
    elif kind is float:
        parts.append(_number(value))
    elif isinstance(value, int):  # a subclass: its int value, whatever it overrides
        _encode(int.__int__(value), parts, depth)
    elif isinstance(value, float):
        parts.append(_number(float.__float__(value)))
    elif isinstance(value, dict):
        if depth >= MAX_DEPTH:
            raise _Unencodable(_TOO_DEEP)
        parts.append("{")
        first = True
        for item_key, item in value.items():
            if not isinstance(item_key, str):
                raise _Unencodable(f"dict key must be a str, not {_type_name(item_key)}")
            if first:
                first = False
            else:
                parts.append(",")
            parts.append(encode_basestring(item_key))
            parts.append(":")
            try:
                _encode(item, parts, depth + 1)
            except _Unencodable as err:
                err.within(item_key)
                raise
        parts.append("}")
    elif isinstance(value, (list, tuple)):
        if depth >= MAX_DEPTH:
            raise _Unencodable(_TOO_DEEP)
        parts.append("[")
        for i, item in enumerate(value):
            if i:
                parts.append(",")
            try:
                _encode(item, parts, depth + 1)
            except _Unencodable as err:
                err.within(i)
                raise
        parts.append("]")
    elif isinstance(value, str):
        parts.append(encode_basestring(value))
    else:
        name = _type_name(value)
        raise _Unencodable(f"cannot encode {_article(name)} {name}")


def _encode_bytes(value: Any) -> bytes:
    """The UTF-8 JSON text of ``value``, or ``_Unencodable``."""
    parts: list[str] = []
    _encode(value, parts, 0)
    text = "".join(parts)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates can only be inside strings (keys or values): escape them there.
        return _SURROGATE.sub(_escape_surrogate, text).encode("utf-8")


def encode_value(value: Any, key: str = "") -> bytes:
    """Encodes a context value as UTF-8 JSON text, exactly as ``JSON.stringify`` would.

    ``None``, bool, int (``-(2**63) .. 2**64 - 1``), finite float (written like JavaScript's
    ``Number.prototype.toString``), str, list, tuple and dict with str keys (in insertion order),
    and subclasses of these (as their base type's value), nested at most 512 deep. Anything else
    raises ``CodecError`` naming ``key`` and the JSON path of the value, e.g.
    ``cannot encode a set at $.items[2]``.
    """
    key = _check_key(key)
    try:
        return _encode_bytes(value)
    except _Unencodable as err:
        raise _codec_error(err.message(), key) from None


def encode_hset_args(writes: Mapping[str, Any]) -> list[bytes]:
    """The arguments of one ``HSET`` call: ``[key1, value1, key2, value2, ...]``, keys as UTF-8
    and values as ``encode_value`` writes them. A value that cannot be encoded raises
    ``CodecError`` naming its key."""
    return _hset_args(writes)


def _hset_args(writes: object) -> list[bytes]:
    if not isinstance(writes, Mapping):
        raise TypeError(f"writes must be a mapping, not {_type_name(writes)}")
    args: list[bytes] = []
    for key, value in writes.items():
        if not isinstance(key, str):
            raise TypeError(f"writes keys must be str, not {_type_name(key)}")
        try:
            name = key.encode("utf-8")
        except UnicodeEncodeError:
            raise _codec_error(_FIELD_NAME_SURROGATE, key) from None
        try:
            encoded = _encode_bytes(value)
        except _Unencodable as err:
            raise _codec_error(err.message(), key) from None
        args.append(name)
        args.append(encoded)
    return args


# ---- decoding: the strict reader (the reference, and every error) ---------------------------------

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_PLAIN = re.compile(r'[^"\\\x00-\x1f]*')
_DIGITS = re.compile(r"[0-9]*")
_HEX = frozenset("0123456789abcdefABCDEF")
_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}

_UNEXPECTED_END = "unexpected end of input"
_EXPECTED_VALUE = "expected a JSON value"
_EXPECTED_COMMA_OR_BRACKET = "expected ',' or ']'"
_EXPECTED_COMMA_OR_BRACE = "expected ',' or '}'"
_EXPECTED_KEY = "expected a property name in double quotes"
_EXPECTED_COLON = "expected ':'"
_CONTROL_CHARACTER = "unescaped control character in string"
_INVALID_ESCAPE = "invalid escape in string"
_INVALID_UNICODE_ESCAPE = "invalid \\u escape in string"
_INVALID_NUMBER = "invalid number"
_NUMBER_OUT_OF_RANGE = "number out of range"
_TRAILING_DATA = "unexpected data after the JSON value"
_NESTING_TOO_DEEP = f"nesting deeper than {MAX_DEPTH} levels"


class _SyntaxError(Exception):
    """What is wrong, at which index of the text (turned into a byte offset for the message)."""

    def __init__(self, kind: str, index: int) -> None:
        super().__init__(kind)
        self.kind = kind
        self.index = index

    def message(self, text: str) -> str:
        offset = len(text[: self.index].encode("utf-8"))
        return f"{self.kind} at byte {offset}"


class _Object:
    """An object being read: its dict and the key whose value comes next."""

    __slots__ = ("items", "key")

    def __init__(self, key: str) -> None:
        self.items: dict[str, Any] = {}
        self.key = key


def _hex4(text: str, backslash: int) -> int:
    """The code unit of the ``\\uXXXX`` escape at ``backslash``."""
    for i in range(backslash + 2, backslash + 6):
        if i >= len(text):
            raise _SyntaxError(_UNEXPECTED_END, len(text))
        if text[i] not in _HEX:
            raise _SyntaxError(_INVALID_UNICODE_ESCAPE, backslash)
    return int(text[backslash + 2 : backslash + 6], 16)


def _low_surrogate_escape(text: str, at: int) -> int | None:
    """The code unit of a ``\\uXXXX`` escape of a low surrogate at ``at``, if there is one."""
    if text[at : at + 2] != "\\u" or len(text) < at + 6:
        return None
    hex_digits = text[at + 2 : at + 6]
    if not all(c in _HEX for c in hex_digits):
        return None
    unit = int(hex_digits, 16)
    return unit if 0xDC00 <= unit < 0xE000 else None


def _read_string(text: str, start: int) -> tuple[str, int]:
    """The string whose opening quote is at ``start``, and the index after its closing quote."""
    end = len(text)
    chunks: list[str] = []
    i = start + 1
    while True:
        run = _PLAIN.match(text, i)
        assert run is not None  # the pattern matches the empty string
        chunks.append(run.group())
        i = run.end()
        if i >= end:
            raise _SyntaxError(_UNEXPECTED_END, end)
        char = text[i]
        if char == '"':
            return "".join(chunks), i + 1
        if char != "\\":
            raise _SyntaxError(_CONTROL_CHARACTER, i)
        if i + 1 >= end:
            raise _SyntaxError(_UNEXPECTED_END, end)
        escape = text[i + 1]
        simple = _SIMPLE_ESCAPES.get(escape)
        if simple is not None:
            chunks.append(simple)
            i += 2
            continue
        if escape != "u":
            raise _SyntaxError(_INVALID_ESCAPE, i)
        unit = _hex4(text, i)
        i += 6
        if 0xD800 <= unit < 0xDC00:
            low = _low_surrogate_escape(text, i)
            if low is not None:
                unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                i += 6
        chunks.append(chr(unit))


def _digits(text: str, i: int) -> int:
    """One or more digits from ``i``; the index after them."""
    if i >= len(text):
        raise _SyntaxError(_UNEXPECTED_END, len(text))
    if not "0" <= text[i] <= "9":
        raise _SyntaxError(_INVALID_NUMBER, i)
    match = _DIGITS.match(text, i + 1)
    assert match is not None
    return match.end()


def _int_or_float(literal: str) -> int | float:
    """An integer literal: an int in range, else the nearest float."""
    if len(literal) <= 21:  # longer literals are out of range for sure (and int() would be slow)
        value = int(literal)
        if _INT_MIN <= value <= _INT_MAX:
            return value
    return float(literal)


def _read_number(text: str, start: int) -> tuple[int | float, int]:
    end = len(text)
    i = start
    if text[i] == "-":
        i += 1
    if i >= end:
        raise _SyntaxError(_UNEXPECTED_END, end)
    if text[i] == "0":
        i += 1
    elif "1" <= text[i] <= "9":
        match = _DIGITS.match(text, i + 1)
        assert match is not None
        i = match.end()
    else:
        raise _SyntaxError(_INVALID_NUMBER, i)
    integral = True
    if i < end and text[i] == ".":
        integral = False
        i = _digits(text, i + 1)
    if i < end and text[i] in "eE":
        integral = False
        i += 1
        if i < end and text[i] in "+-":
            i += 1
        i = _digits(text, i)
    literal = text[start:i]
    value = _int_or_float(literal) if integral else float(literal)
    if value in (_INF, -_INF):
        raise _SyntaxError(_NUMBER_OUT_OF_RANGE, start)
    return value, i


def _read_literal(text: str, start: int, word: str) -> int:
    for offset, expected in enumerate(word):
        i = start + offset
        if i >= len(text):
            raise _SyntaxError(_UNEXPECTED_END, len(text))
        if text[i] != expected:
            raise _SyntaxError(_EXPECTED_VALUE, start)
    return start + len(word)


def _skip(text: str, i: int) -> int:
    match = _WHITESPACE.match(text, i)
    assert match is not None
    return match.end()


def _read_key(text: str, i: int) -> tuple[str, int]:
    """An object key and its colon; ``i`` is at the expected opening quote."""
    if i >= len(text):
        raise _SyntaxError(_UNEXPECTED_END, len(text))
    if text[i] != '"':
        raise _SyntaxError(_EXPECTED_KEY, i)
    key, i = _read_string(text, i)
    i = _skip(text, i)
    if i >= len(text):
        raise _SyntaxError(_UNEXPECTED_END, len(text))
    if text[i] != ":":
        raise _SyntaxError(_EXPECTED_COLON, i)
    return key, i + 1


def _strict_parse(text: str) -> Any:
    """Reads one JSON document (non-empty text) like ``parse`` in ``rust_core/codec.rs``, step for
    step; iterative, so no nesting can exhaust the Python stack. Raises ``_SyntaxError``."""
    end = len(text)
    stack: list[list[Any] | _Object] = []
    i = 0
    while True:
        i = _skip(text, i)
        if i >= end:
            raise _SyntaxError(_UNEXPECTED_END, end)
        char = text[i]
        value: Any
        if char == "[" or char == "{":
            if len(stack) >= MAX_DEPTH:
                raise _SyntaxError(_NESTING_TOO_DEEP, i)
            i = _skip(text, i + 1)
            if char == "[":
                if i < end and text[i] == "]":
                    i += 1
                    value = []
                else:
                    stack.append([])
                    continue
            elif i < end and text[i] == "}":
                i += 1
                value = {}
            else:
                key, i = _read_key(text, i)
                stack.append(_Object(key))
                continue
        elif char == '"':
            value, i = _read_string(text, i)
        elif char == "-" or "0" <= char <= "9":
            value, i = _read_number(text, i)
        elif char == "t":
            i = _read_literal(text, i, "true")
            value = True
        elif char == "f":
            i = _read_literal(text, i, "false")
            value = False
        elif char == "n":
            i = _read_literal(text, i, "null")
            value = None
        else:
            raise _SyntaxError(_EXPECTED_VALUE, i)
        # A value is complete: hand it to its container, closing the containers it completes.
        while True:
            if not stack:
                i = _skip(text, i)
                if i < end:
                    raise _SyntaxError(_TRAILING_DATA, i)
                return value
            frame = stack[-1]
            if isinstance(frame, list):
                frame.append(value)
                i = _skip(text, i)
                if i >= end:
                    raise _SyntaxError(_UNEXPECTED_END, end)
                if text[i] == ",":
                    i += 1
                    break
                if text[i] != "]":
                    raise _SyntaxError(_EXPECTED_COMMA_OR_BRACKET, i)
                i += 1
                stack.pop()
                value = frame
            else:
                frame.items[frame.key] = value
                i = _skip(text, i)
                if i >= end:
                    raise _SyntaxError(_UNEXPECTED_END, end)
                if text[i] == ",":
                    frame.key, i = _read_key(text, _skip(text, i + 1))
                    break
                if text[i] != "}":
                    raise _SyntaxError(_EXPECTED_COMMA_OR_BRACE, i)
                i += 1
                stack.pop()
                value = frame.items


# ---- decoding: the fast path ---------------------------------------------------------------------


class _Refused(Exception):
    """Raised from a :mod:`json` hook: the strict reader has to look at this text."""


def _refuse_constant(name: str) -> Any:
    raise _Refused(name)  # NaN, Infinity, -Infinity: not JSON


def _checked_int(literal: str) -> int | float:
    value = _int_or_float(literal)
    if value in (_INF, -_INF):
        raise _Refused(literal)
    return value


def _checked_float(literal: str) -> float:
    value = float(literal)
    if value in (_INF, -_INF):
        raise _Refused(literal)
    return value


_PLAIN_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
_CHECKED_DECODER = json.JSONDecoder(
    parse_constant=_refuse_constant, parse_int=_checked_int, parse_float=_checked_float
)
# Text in which a number might be out of the int range or overflow a double: a run of 19 digits
# (an integer part that long can leave the int range; one that overflows has hundreds), or an
# exponent of 3 digits. Other text needs no number hooks, which keeps the common case in C.
_NEEDS_NUMBER_CHECKS = re.compile(r"[0-9]{19}|[eE][-+]?[0-9]{3}")
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
_SHORTEST_TOO_DEEP = 2 * (MAX_DEPTH + 1)


def _depth(text: str) -> int:
    """The deepest nesting of a valid JSON document."""
    depth = deepest = 0
    for token in _TOKENS.findall(text):
        if token in ("[", "{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in ("]", "}"):
            depth -= 1
    return deepest


def _parse_text(text: str, prefix: str, key: str | None) -> Any:
    """Reads a non-empty, valid Unicode text."""
    try:
        if _NEEDS_NUMBER_CHECKS.search(text) is None:
            value = _PLAIN_DECODER.decode(text)
        else:
            value = _CHECKED_DECODER.decode(text)
        if not (
            len(text) >= _SHORTEST_TOO_DEEP
            and text.count("[") + text.count("{") > MAX_DEPTH
            and _depth(text) > MAX_DEPTH
        ):
            return value
    except (ValueError, RecursionError, _Refused):
        pass
    try:
        return _strict_parse(text)
    except _SyntaxError as err:
        raise _codec_error(prefix + err.message(text), key) from None


def _decode(data: object, what: str, prefix: str, key: str | None) -> Any:
    """Decodes a ``bytes | str`` argument; ``TypeError`` with ``what`` for anything else."""
    if isinstance(data, bytes):
        if not data:
            return None
        try:
            text = bytes.decode(data, "utf-8")
        except UnicodeDecodeError as err:
            raise _codec_error(f"{prefix}invalid UTF-8 at byte {err.start}", key) from None
    elif isinstance(data, str):
        if not data:
            return None
        text = data
        if not str.isascii(text):
            surrogate = _SURROGATE.search(text)
            if surrogate is not None:
                offset = len(text[: surrogate.start()].encode("utf-8"))
                raise _codec_error(f"{prefix}invalid UTF-8 at byte {offset}", key)
    else:
        raise TypeError(f"{what} must be bytes or str, not {_type_name(data)}")
    return _parse_text(text, prefix, key)


def decode_value(data: bytes | str, key: str = "") -> Any:
    """Decodes JSON text (bytes or str) to a Python value, as ``JSON.parse`` reads it.

    Objects become dicts in document order (a duplicate key: the last value wins), integer literals
    in ``-(2**63) .. 2**64 - 1`` ints, other numbers floats; empty input is ``None`` (Flowcraft
    stores ``''`` for ``undefined``). Invalid JSON raises ``CodecError`` naming ``key``, what is
    wrong and its byte offset.
    """
    key = _check_key(key)
    return _decode(data, "data", "", key)


def _field_name(field: object, what: str) -> str:
    if isinstance(field, str):
        return field
    if isinstance(field, bytes):
        try:
            return bytes.decode(field, "utf-8")
        except UnicodeDecodeError as err:
            shown = bytes.decode(field, "utf-8", "backslashreplace")
            raise _codec_error(f"field name is not valid UTF-8 at byte {err.start}", shown) from None
    raise TypeError(f"{what} must be bytes or str, not {_type_name(field)}")


def _items(value: object) -> list[Any] | None:
    """The items of a list, a tuple or another Sequence that is not str/bytes/bytearray."""
    if type(value) is list or type(value) is tuple:
        return list(value)
    if isinstance(value, (str, bytes, bytearray)) or not isinstance(value, Sequence):
        return None
    return list(value)


def decode_hash(reply: Mapping[bytes | str, bytes | str] | Sequence[bytes | str]) -> dict[str, Any]:
    """Decodes an ``HGETALL`` reply (a mapping of field to value, or a flat sequence ``field1,
    value1, ...``; fields and values bytes or str) to ``{field: decoded value}``. A value that
    does not decode raises ``CodecError`` naming its field."""
    return _hash(reply)


def _hash(reply: object) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(reply, Mapping):
        for field, value in reply.items():
            name = _field_name(field, "reply keys")
            out[name] = _decode(value, "reply values", "", name)
        return out
    items = _items(reply)
    if items is None:
        raise TypeError(f"reply must be a mapping or a sequence, not {_type_name(reply)}")
    if len(items) % 2:
        raise CodecError(f"HGETALL reply has an odd number of items ({len(items)})")
    for i in range(0, len(items), 2):
        name = _field_name(items[i], f"reply[{i}]")
        out[name] = _decode(items[i + 1], f"reply[{i + 1}]", "", name)
    return out


def decode_hmget(keys: Sequence[str], values: Sequence[bytes | str | None]) -> dict[str, Any]:
    """Decodes an ``HMGET`` reply: ``values[i]`` is the stored text of ``keys[i]``, or ``None``
    for a missing field, which is left out of the result. A value that does not decode raises
    ``CodecError`` naming its key."""
    return _hmget(keys, values)


def _hmget(keys: object, values: object) -> dict[str, Any]:
    names = _items(keys)
    if names is None:
        raise TypeError(f"keys must be a sequence of str, not {_type_name(keys)}")
    for i, name in enumerate(names):
        if not isinstance(name, str):
            raise TypeError(f"keys[{i}] must be a str, not {_type_name(name)}")
    items = _items(values)
    if items is None:
        raise TypeError(f"values must be a sequence, not {_type_name(values)}")
    if len(names) != len(items):
        raise CodecError(f"HMGET reply has {len(items)} values for {len(names)} keys")
    out: dict[str, Any] = {}
    for i, (name, value) in enumerate(zip(names, items, strict=True)):
        if value is None:
            continue
        if not isinstance(value, (bytes, str)):
            raise TypeError(f"values[{i}] must be bytes, str or None, not {_type_name(value)}")
        out[name] = _decode(value, "", "", name)
    return out


# ---- job payloads ----------------------------------------------------------------------------------


def _check_job_fields(payload: dict[str, Any]) -> None:
    for field in _JOB_PAYLOAD_FIELDS:
        if not isinstance(payload.get(field), str):
            raise CodecError(f"{_JOB_PAYLOAD}{field} must be a string")


def encode_job_payload(payload: Mapping[str, Any]) -> bytes:
    """Encodes the data of an ``executeNode`` job: a mapping with str ``runId``, ``blueprintId``
    and ``nodeId`` (other keys are kept). ``CodecError`` messages start with ``job payload: ``."""
    return _job_payload(payload)


def _job_payload(payload: object) -> bytes:
    if type(payload) is dict:
        data: dict[str, Any] = payload
    elif isinstance(payload, Mapping):
        data = dict(payload)
    else:
        raise TypeError(f"payload must be a mapping, not {_type_name(payload)}")
    _check_job_fields(data)
    try:
        return _encode_bytes(data)
    except _Unencodable as err:
        raise CodecError(_JOB_PAYLOAD + err.message()) from None


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array"


def decode_job_payload(data: bytes | str) -> dict[str, Any]:
    """Decodes and checks the data of an ``executeNode`` job (see ``encode_job_payload``)."""
    value = _decode(data, "data", _JOB_PAYLOAD, None)
    if not isinstance(value, dict):
        raise CodecError(f"{_JOB_PAYLOAD}expected a JSON object, not {_json_type(value)}")
    _check_job_fields(value)
    return value
