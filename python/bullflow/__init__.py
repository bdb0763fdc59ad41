"""bullflow: Flowcraft-compatible workflows, in process or across a fleet of BullMQ workers."""

from __future__ import annotations

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

__all__ = [
    "CORE_IMPL",
    "BaseNode",
    "Blueprint",
    "BlueprintAnalysis",
    "BlueprintError",
    "BuilderError",
    "BullflowError",
    "CancellationSignal",
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
    "ResumeError",
    "StrictModeError",
    "SubflowError",
    "WorkflowCancelledError",
    "WorkflowError",
    "WorkflowResult",
    "__version__",
    "analyze_blueprint",
    "compile_expression",
    "evaluate",
    "lint_blueprint",
    "load_blueprint",
    "to_mermaid",
    "to_mermaid_for_run",
    "uses_key_for",
]
