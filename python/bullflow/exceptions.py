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
    "DurableError",
    "ExpressionError",
    "FatalNodeError",
    "InfiniteLoopError",
    "InstanceExistsError",
    "InstanceNotFoundError",
    "InstanceStatusError",
    "InternalAttemptError",
    "MissingImplementationError",
    "NodeError",
    "NodeTimeoutError",
    "NonDeterminismError",
    "NonRetryableError",
    "PayloadTooLargeError",
    "ResumeError",
    "StepConfigError",
    "StepError",
    "StepLimitExceededError",
    "StepSkippedError",
    "StepTimeoutError",
    "StrictModeError",
    "SubflowError",
    "WaitTimeoutError",
    "WorkflowCancelledError",
    "WorkflowFailedError",
    "WorkflowTerminatedError",
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


# ----------------------------------------------------------------------------- durable workflows
class DurableError(BullflowError):
    """Root of the errors of durable step workflows (``bullflow.durable``)."""


class NonRetryableError(DurableError):
    """Raised by a step function: the step fails at once, without further attempts."""


class StepError(DurableError):
    """A step failed with an error whose type cannot be rebuilt on replay (its class is not
    importable here): ``error_type`` is its qualified name, ``step`` the step's name."""

    def __init__(self, step: str, error_type: str, message: str) -> None:
        self.step = step
        self.error_type = error_type
        self.message = message
        super().__init__(f"step {step!r} failed with {error_type}: {message}")

    def __reduce__(self) -> Any:
        return (StepError, (self.step, self.error_type, self.message))


class StepTimeoutError(DurableError):
    """A step attempt ran longer than its ``timeout`` (seconds); it counts as a failed attempt."""

    def __init__(self, step: str, timeout: float) -> None:
        self.step = step
        self.timeout = timeout
        super().__init__(f"step {step!r} timed out after {timeout:g} s")

    def __reduce__(self) -> Any:
        return (StepTimeoutError, (self.step, self.timeout))


class InternalAttemptError(DurableError):
    """A step attempt started but never finished: its worker died or lost the instance. It counts
    as a failed attempt."""


class WaitTimeoutError(DurableError):
    """``step.wait_for_event`` saw no event of its type before its timeout."""

    def __init__(self, step: str, event_type: str) -> None:
        self.step = step
        self.event_type = event_type
        super().__init__(f"wait {step!r} for an event of type {event_type!r} timed out")

    def __reduce__(self) -> Any:
        return (WaitTimeoutError, (self.step, self.event_type))


class StepSkippedError(DurableError):
    """A step with ``depends=`` did not run because its join policy was not met."""

    def __init__(self, step: str, join: str, failed: list[str]) -> None:
        self.step = step
        self.join = join
        self.failed = list(failed)
        super().__init__(f"step {step!r} skipped: join {join!r} not met (failed: {', '.join(failed) or '-'})")

    def __reduce__(self) -> Any:
        return (StepSkippedError, (self.step, self.join, self.failed))


class StepConfigError(DurableError, ValueError):
    """A step was called with a bad name, duration or configuration."""


class NonDeterminismError(DurableError):
    """A replay reached a step that differs from the instance's history (another name at that
    place, another kind or configuration). The instance fails with this reason."""


class StepLimitExceededError(DurableError):
    """The instance started more steps than its limit (``DurableSettings.step_limit``)."""


class PayloadTooLargeError(DurableError, ValueError):
    """A params, step output, event payload or workflow output is larger than allowed."""


class InstanceNotFoundError(DurableError, LookupError):
    """No durable instance has this id."""


class InstanceExistsError(DurableError):
    """A durable instance with this id exists already."""


class InstanceStatusError(DurableError):
    """The operation is not allowed in the instance's current status (``status``)."""

    def __init__(self, message: str, status: str | None = None) -> None:
        self.status = status
        super().__init__(message)

    def __reduce__(self) -> Any:
        return (InstanceStatusError, (self.args[0], self.status))


class WorkflowFailedError(DurableError):
    """``result()`` of an instance that ended ``errored``: ``error`` is its ``{type, name,
    message}``."""

    def __init__(self, instance_id: str, error: dict[str, Any]) -> None:
        self.instance_id = instance_id
        self.error = dict(error)
        super().__init__(
            f"workflow instance {instance_id!r} failed: {error.get('name', 'Error')}: {error.get('message', '')}"
        )

    def __reduce__(self) -> Any:
        return (WorkflowFailedError, (self.instance_id, self.error))


class WorkflowTerminatedError(DurableError):
    """``result()`` of an instance that was terminated."""
