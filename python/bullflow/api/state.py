"""What one API process holds while it serves: the Redis client, the run client (starts,
cancels and resumes runs and waits for their statuses), the blueprint registry and the durable
workflow clients. Built by the app's lifespan, closed with it."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Annotated, Any, cast

from fastapi import Depends, Request
from redis.asyncio import Redis

from ..client import Client
from ..coordination import RunOptions
from ..durable.client import Workflow, WorkflowInstance, _Client
from ..durable.entrypoint import WorkflowEntrypoint
from ..durable.store import DurableStore
from ..exceptions import InstanceNotFoundError
from ..registry import BlueprintRegistry
from ..scripts import ScriptRunner
from .errors import ApiError
from .settings import ApiSettings

__all__ = ["ApiState", "DurableClients", "StateDep", "get_state"]

logger = logging.getLogger(__name__)


@dataclass
class DurableClients:
    """One :class:`Workflow` per known workflow class (made on first use) and one client for
    the instance routes, which work for any instance, known class or not."""

    settings: ApiSettings
    classes: dict[str, type[WorkflowEntrypoint]]
    _workflows: dict[str, Workflow[Any]] = field(default_factory=dict)
    _instances: _Client | None = None

    def workflow(self, name: str) -> Workflow[Any]:
        cls = self.classes.get(name)
        if cls is None:
            known = ", ".join(sorted(self.classes)) or "none"
            raise ApiError(404, f"unknown durable workflow {name!r} (known: {known})")
        made = self._workflows.get(name)
        if made is None:
            made = self._workflows[name] = Workflow(cls, self.settings.redis, settings=self.settings.durable)
        return made

    @property
    def store(self) -> DurableStore:
        if self._instances is None:
            self._instances = _Client(DurableStore(self.settings.redis, self.settings.durable))
        return self._instances.store

    async def instance(self, instance_id: str) -> WorkflowInstance:
        """The instance; :class:`InstanceNotFoundError` when there is none."""
        store = self.store
        assert self._instances is not None
        if not await cast("Any", store.redis.exists(store.keys(instance_id).instance)):
            raise InstanceNotFoundError(f"workflow instance {instance_id!r} not found")
        return WorkflowInstance(self._instances, instance_id)

    async def close(self) -> None:
        for workflow in self._workflows.values():
            with contextlib.suppress(Exception):
                await workflow.close()
        if self._instances is not None:
            with contextlib.suppress(Exception):
                await self._instances.close()


@dataclass
class ApiState:
    settings: ApiSettings
    client: Client
    registry: BlueprintRegistry
    durable: DurableClients
    scripts: ScriptRunner

    @property
    def redis(self) -> Redis:
        return self.client.redis

    @classmethod
    def open(cls, settings: ApiSettings, workflows: dict[str, type[WorkflowEntrypoint]]) -> ApiState:
        client = Client(
            connection=settings.redis,
            queue_name=settings.queue,
            run_options=RunOptions(queue_prefix=settings.queue_prefix),
        )
        return cls(
            settings=settings,
            client=client,
            registry=BlueprintRegistry(client.redis),
            durable=DurableClients(settings, workflows),
            scripts=ScriptRunner(client.redis),
        )

    async def close(self) -> None:
        await self.durable.close()
        await self.client.close()


def get_state(request: Request) -> ApiState:
    """The state of the app serving ``request`` (a FastAPI dependency)."""
    return cast("ApiState", request.app.state.bullflow)


StateDep = Annotated[ApiState, Depends(get_state)]
