"""The bullflow exception hierarchy: every error the library raises on purpose derives from
:class:`BullflowError`, and carries the ids a person needs to find the problem.

Transport errors from redis-py pass through unchanged.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BlueprintError",
    "BuilderError",
    "BullflowError",
    "CodecError",
    "ExpressionError",
    "FatalNodeError",
    "InfiniteLoopError",
    "MissingImplementationError",
    "NodeError",
    "NodeTimeoutError",
    "ResumeError",
    "StrictModeError",
    "SubflowError",
    "WorkflowCancelledError",
]


class BullflowError(Exception):
    """Root of every error bullflow raises."""


class BlueprintError(BullflowError, ValueError):
    """A blueprint is malformed or invalid.

    ``path`` is the JSON path of the offending value (``nodes[3].config.maxRetries``), ``problem``
    what is wrong with it. ``str(err)`` is ``"<path>: <problem>"``.
    """

    def __init__(self, problem: str, path: str = "", *, blueprint_id: str | None = None) -> None:
        self.problem = problem
        self.path = path
        self.blueprint_id = blueprint_id
        super().__init__(f"{path}: {problem}" if path else problem)

    def __reduce__(self) -> Any:
        return (_rebuild_blueprint_error, (self.problem, self.path, self.blueprint_id))


def _rebuild_blueprint_error(problem: str, path: str, blueprint_id: str | None) -> BlueprintError:
    return BlueprintError(problem, path, blueprint_id=blueprint_id)


class StrictModeError(BlueprintError):
    """A run in strict mode was given a blueprint with cycles."""


class BuilderError(BullflowError, ValueError):
    """The fluent ``Flow`` builder was used inconsistently (unknown loop node, empty flow...)."""


class ExpressionError(BullflowError, ValueError):
    """An edge condition, transform or loop condition cannot be parsed.

    ``expression`` is the source text and ``position`` the 0-based character offset of the problem.
    """

    def __init__(self, message: str, expression: str = "", position: int | None = None) -> None:
        self.message = message
        self.expression = expression
        self.position = position
        where = f" at column {position + 1}" if position is not None else ""
        shown = f" in {expression!r}" if expression else ""
        super().__init__(f"{message}{where}{shown}")

    def __reduce__(self) -> Any:
        return (ExpressionError, (self.message, self.expression, self.position))


class NodeError(BullflowError):
    """A node failed. ``cause`` is what the node raised (also chained as ``__cause__``).

    ``is_fatal`` errors are not retried and do not trigger a configured fallback node.
    """

    is_fatal: bool = False

    def __init__(
        self,
        message: str,
        *,
        node_id: str | None = None,
        blueprint_id: str | None = None,
        run_id: str | None = None,
        cause: BaseException | None = None,
        is_fatal: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.node_id = node_id
        self.blueprint_id = blueprint_id
        self.run_id = run_id
        self.cause = cause
        if is_fatal is not None:
            self.is_fatal = is_fatal
        if cause is not None:
            self.__cause__ = cause

    def __reduce__(self) -> Any:
        return (
            _rebuild_node_error,
            (type(self), self.message, self.node_id, self.blueprint_id, self.run_id, self.is_fatal),
        )


def _rebuild_node_error(
    cls: type[NodeError],
    message: str,
    node_id: str | None,
    blueprint_id: str | None,
    run_id: str | None,
    is_fatal: bool,
) -> NodeError:
    return cls(message, node_id=node_id, blueprint_id=blueprint_id, run_id=run_id, is_fatal=is_fatal)


class FatalNodeError(NodeError):
    """Raise from a node to fail it at once: no further attempts, no fallback node."""

    is_fatal = True


class MissingImplementationError(NodeError):
    """A node's ``uses`` key is not in the registry."""

    is_fatal = True


class NodeTimeoutError(NodeError):
    """One attempt of a node ran longer than its ``config.timeout`` and was cancelled."""


class SubflowError(NodeError):
    """A subflow node's child workflow is missing or did not complete."""


class WorkflowCancelledError(BullflowError):
    """The run was cancelled through its cancellation signal."""

    def __init__(self, message: str = "Workflow cancelled", *, reason: Any = None) -> None:
        super().__init__(message)
        self.reason = reason


class InfiniteLoopError(BullflowError):
    """A run exceeded the scheduler's maximum number of waves (a loop that never exits)."""


class ResumeError(BullflowError):
    """``resume()`` was called for a run or node that is not awaiting."""


class CodecError(BullflowError, ValueError):
    """A context value cannot be encoded as JSON (or a stored value cannot be decoded).

    ``key`` names the context key that holds the value.
    """

    def __init__(self, message: str, *, key: str | None = None) -> None:
        self.message = message
        self.key = key
        super().__init__(f"{key}: {message}" if key is not None else message)

    def __reduce__(self) -> Any:
        return (_rebuild_codec_error, (self.message, self.key))


def _rebuild_codec_error(message: str, key: str | None) -> CodecError:
    return CodecError(message, key=key)


class SettingsError(BullflowError, ValueError):
    """A setting (a Redis URL, a queue name...) is not valid; the message names it."""


class ScriptError(BullflowError):
    """A Lua coordination script answered with a code that means the call itself was wrong.

    ``script`` names the script and ``code`` is its return code (see ``lua/README.md``)."""

    def __init__(self, message: str, *, script: str, code: int | None = None) -> None:
        self.message = message
        self.script = script
        self.code = code
        super().__init__(f"{script}: {message}")

    def __reduce__(self) -> Any:
        return (_rebuild_script_error, (self.message, self.script, self.code))


def _rebuild_script_error(message: str, script: str, code: int | None) -> ScriptError:
    return ScriptError(message, script=script, code=code)
