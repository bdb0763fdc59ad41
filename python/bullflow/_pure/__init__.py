"""Pure-Python twin of the Rust extension ``bullflow._core``: the same functions, with the same
results and errors. ``bullflow._impl`` picks one of the two (``BULLFLOW_IMPL=python`` selects this
one); the rest of the library imports from ``_impl`` only."""

from __future__ import annotations

from .analysis import analyze_graph
from .blueprint import parse_blueprint
from .codec import (
    decode_hash,
    decode_hmget,
    decode_job_payload,
    decode_value,
    encode_hset_args,
    encode_job_payload,
    encode_value,
)
from .graph import CompiledGraph, RunState, compile_graph

__all__ = [
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
