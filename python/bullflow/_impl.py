"""Picks the implementation of the core functions: the Rust extension ``bullflow._core`` or its
pure-Python twin ``bullflow._pure``. The rest of the library imports these functions from here and
never branches on which one is active.

The environment variable ``BULLFLOW_IMPL`` is read once, at import time:

* unset or ``rust``: ``bullflow._core`` (the default);
* ``python``: ``bullflow._pure``;
* anything else: ``ImportError``.
"""

from __future__ import annotations

import os

__all__ = [
    "IMPL",
    "CompiledGraph",
    "RunState",
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

_VARIABLE = "BULLFLOW_IMPL"
_ALLOWED = ("rust", "python")

_requested = os.environ.get(_VARIABLE, "rust")
if _requested not in _ALLOWED:
    raise ImportError(
        f"{_VARIABLE}={_requested!r} is not supported: unset it or set it to one of "
        + ", ".join(repr(name) for name in _ALLOWED)
    )

IMPL: str = _requested

if IMPL == "rust":
    try:
        from bullflow._core import (
            CompiledGraph,
            RunState,
            analyze_graph,
            compile_graph,
            decode_hash,
            decode_hmget,
            decode_job_payload,
            decode_value,
            encode_hset_args,
            encode_job_payload,
            encode_value,
            parse_blueprint,
        )
    except ImportError as exc:
        raise ImportError(
            f"the Rust extension bullflow._core cannot be imported ({exc}); build it with "
            f"`maturin develop --release`, or set {_VARIABLE}=python to use the pure-Python twin"
        ) from exc
else:
    from bullflow._pure import (  # type: ignore[assignment]
        CompiledGraph,
        RunState,
        analyze_graph,
        compile_graph,
        decode_hash,
        decode_hmget,
        decode_job_payload,
        decode_value,
        encode_hset_args,
        encode_job_payload,
        encode_value,
        parse_blueprint,
    )
