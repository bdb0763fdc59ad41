"""How durable values, errors and events are written: values through a pluggable
:class:`Serializer` (JSON by default), errors as ``{type, name, message, args?}`` and rebuilt on
replay as the same exception type when that type is loaded in the worker."""

from __future__ import annotations

import base64
import builtins
import json
import pickle
import sys
from typing import Any, Protocol

import orjson

from ..exceptions import NonRetryableError, StepError

__all__ = ["JsonSerializer", "PickleSerializer", "Serializer", "decode_error", "encode_error"]


class Serializer(Protocol):
    """Turns step outputs, params, event payloads and workflow outputs into JSON text and back.
    ``dumps`` raises ``TypeError`` or ``ValueError`` for a value it cannot hold."""

    def dumps(self, value: Any) -> str: ...

    def loads(self, text: str | bytes) -> Any: ...


class JsonSerializer:
    """JSON (the default): ``None`` round-trips, tuples come back as lists, NaN and infinities
    are refused."""

    def dumps(self, value: Any) -> str:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)

    def loads(self, text: str | bytes) -> Any:
        return orjson.loads(text)


class PickleSerializer:
    """Opt-in: any picklable value, stored as a base64 JSON string. Only for instances whose
    workers and clients trust each other (unpickling runs code)."""

    def dumps(self, value: Any) -> str:
        return json.dumps(base64.b64encode(pickle.dumps(value)).decode())

    def loads(self, text: str | bytes) -> Any:
        return pickle.loads(base64.b64decode(orjson.loads(text)))


def encode_error(exc: BaseException) -> dict[str, Any]:
    """``{type, module, name, message, retryable, args?}`` of an exception; ``args`` only when
    JSON can hold them (they rebuild the same exception on replay)."""
    cls = type(exc)
    out: dict[str, Any] = {
        "type": f"{cls.__module__}.{cls.__qualname__}",
        "module": cls.__module__,
        "name": cls.__name__,
        "message": str(exc),
        "retryable": not isinstance(exc, NonRetryableError),
    }
    args = exc.args
    try:
        # an exception whose __init__ takes other arguments than it passes on (WaitTimeoutError,
        # StepTimeoutError, ...) says which through __reduce__, as pickle would use them
        reduced = exc.__reduce__()
        if (
            isinstance(reduced, tuple)
            and len(reduced) >= 2
            and reduced[0] is cls
            and isinstance(reduced[1], tuple)
        ):
            args = reduced[1]
    except Exception:
        pass
    try:
        json.dumps(list(args), allow_nan=False)
        out["args"] = list(args)
    except (TypeError, ValueError):
        pass
    return out


def decode_error(error: dict[str, Any], step: str) -> BaseException:
    """The exception ``error`` describes: its own type when that class is already loaded here
    (a module is never imported for it), rebuilt from its args or its message; otherwise a
    :class:`StepError` naming the type."""
    type_name = str(error.get("type", ""))
    message = str(error.get("message", ""))
    module_name = str(error.get("module", ""))
    cls = _loaded_exception_class(module_name, type_name[len(module_name) + 1 :] if module_name else "")
    if cls is not None:
        args = error.get("args")
        candidates: list[tuple[Any, ...]] = [tuple(args)] if isinstance(args, list) else []
        candidates.append((message,))
        for candidate in candidates:
            try:
                return cls(*candidate)
            except Exception:
                continue
    return StepError(step, type_name or "Exception", message)


def _loaded_exception_class(module_name: str, qualname: str) -> type[BaseException] | None:
    module = builtins if module_name == "builtins" else sys.modules.get(module_name)
    if module is None or not qualname:
        return None
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    if isinstance(obj, type) and issubclass(obj, Exception):
        return obj
    return None
