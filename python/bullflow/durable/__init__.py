"""Durable step workflows on Redis and BullMQ, in the model of Cloudflare Workflows: a workflow
is a :class:`WorkflowEntrypoint` whose ``run(event, step)`` is replayed from the top on every
activation, with ``step.do`` results, sleeps and events recorded in Redis.

Client side::

    async with Workflow(OrderWorkflow, "redis://127.0.0.1:6379/0") as orders:
        instance = await orders.create(params={"order": 17})
        print(await instance.result(timeout=60))

Worker side: ``await create_workflow_workers(connection, ctx, env, concurrency=10)`` or the
command ``bullflow durable-worker MODULE``.
"""

from __future__ import annotations

from ..exceptions import (
    DurableError,
    InstanceExistsError,
    InstanceNotFoundError,
    InstanceStatusError,
    InternalAttemptError,
    NonDeterminismError,
    NonRetryableError,
    PayloadTooLargeError,
    StepConfigError,
    StepError,
    StepLimitExceededError,
    StepSkippedError,
    StepTimeoutError,
    WaitTimeoutError,
    WorkflowFailedError,
    WorkflowTerminatedError,
)
from ..settings import DurableSettings
from .client import InstanceStatus, LogEntry, Workflow, WorkflowInstance
from .entrypoint import Event, WorkflowEntrypoint, WorkflowEvent, registered_workflows
from .reconciler import DurableReconciler, DurableReconciliationStats
from .replay import RetryConfig, StepContext
from .serialization import JsonSerializer, PickleSerializer, Serializer
from .step import StepFunction, WorkflowStep
from .store import DurableStore
from .worker import WorkflowWorkers, create_workflow_workers

__all__ = [
    "DurableError",
    "DurableReconciler",
    "DurableReconciliationStats",
    "DurableSettings",
    "DurableStore",
    "Event",
    "InstanceExistsError",
    "InstanceNotFoundError",
    "InstanceStatus",
    "InstanceStatusError",
    "InternalAttemptError",
    "JsonSerializer",
    "LogEntry",
    "NonDeterminismError",
    "NonRetryableError",
    "PayloadTooLargeError",
    "PickleSerializer",
    "RetryConfig",
    "Serializer",
    "StepConfigError",
    "StepContext",
    "StepError",
    "StepFunction",
    "StepLimitExceededError",
    "StepSkippedError",
    "StepTimeoutError",
    "WaitTimeoutError",
    "Workflow",
    "WorkflowEntrypoint",
    "WorkflowEvent",
    "WorkflowFailedError",
    "WorkflowInstance",
    "WorkflowStep",
    "WorkflowTerminatedError",
    "WorkflowWorkers",
    "create_workflow_workers",
    "registered_workflows",
]
