"""bullflow: Flowcraft-compatible workflows, in process or across a fleet of BullMQ workers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._impl import IMPL as CORE_IMPL
from .analysis import BlueprintAnalysis, analyze_blueprint
from .blueprint import Blueprint, EdgeDefinition, NodeConfig, NodeDefinition, load_blueprint
from .builder import Flow, uses_key_for
from .cancellation import CancellationSignal
from .events import FlowEvent, InMemoryEventLogger
from .exceptions import (
    BlueprintError,
    BuilderError,
    BullflowError,
    CodecError,
    ExpressionError,
    FatalNodeError,
    InfiniteLoopError,
    MissingImplementationError,
    NodeError,
    NodeTimeoutError,
    ResumeError,
    StrictModeError,
    SubflowError,
    WorkflowCancelledError,
)
from .expressions import compile_expression, evaluate
from .lint import LintIssue, LintResult, lint_blueprint
from .mermaid import to_mermaid, to_mermaid_for_run
from .nodes import BaseNode, NodeContext, NodeResult
from .results import WorkflowError, WorkflowResult
from .runtime import FlowRuntime

try:
    from ._core import __version__
except ImportError:  # pragma: no cover - only without a built extension
    __version__ = "0.0.0"

if TYPE_CHECKING:
    from .adapter import BullMQAdapter
    from .client import Client, RunHandle
    from .coordination import RedisCoordinationStore, RunOptions
    from .python_coordination import PythonCoordinationStore
    from .reconciler import Reconciler, ReconciliationStats, create_bullmq_reconciler
    from .redis_context import RedisContext
    from .settings import RedisSettings

# The distributed runtime (bullmq, redis-py) is imported on first use, so `import bullflow` stays
# light for in-process users.
_LAZY = {
    "BullMQAdapter": "adapter",
    "Client": "client",
    "RunHandle": "client",
    "RedisContext": "redis_context",
    "RedisCoordinationStore": "coordination",
    "PythonCoordinationStore": "python_coordination",
    "RunOptions": "coordination",
    "RedisSettings": "settings",
    "ReconciliationStats": "reconciler",
    "Reconciler": "reconciler",
    "create_bullmq_reconciler": "reconciler",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bullflow' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "CORE_IMPL",
    "BaseNode",
    "Blueprint",
    "BlueprintAnalysis",
    "BlueprintError",
    "BuilderError",
    "BullMQAdapter",
    "BullflowError",
    "CancellationSignal",
    "Client",
    "CodecError",
    "EdgeDefinition",
    "ExpressionError",
    "FatalNodeError",
    "Flow",
    "FlowEvent",
    "FlowRuntime",
    "InMemoryEventLogger",
    "InfiniteLoopError",
    "LintIssue",
    "LintResult",
    "MissingImplementationError",
    "NodeConfig",
    "NodeContext",
    "NodeDefinition",
    "NodeError",
    "NodeResult",
    "NodeTimeoutError",
    "PythonCoordinationStore",
    "Reconciler",
    "ReconciliationStats",
    "RedisContext",
    "RedisCoordinationStore",
    "RedisSettings",
    "ResumeError",
    "RunHandle",
    "RunOptions",
    "StrictModeError",
    "SubflowError",
    "WorkflowCancelledError",
    "WorkflowError",
    "WorkflowResult",
    "__version__",
    "analyze_blueprint",
    "compile_expression",
    "create_bullmq_reconciler",
    "evaluate",
    "lint_blueprint",
    "load_blueprint",
    "to_mermaid",
    "to_mermaid_for_run",
    "uses_key_for",
]
