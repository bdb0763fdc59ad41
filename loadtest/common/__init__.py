"""User base classes of the load tests."""

from .user import LostRunError, RunFailedError, RunTracker, WorkflowClientUser

__all__ = ["LostRunError", "RunFailedError", "RunTracker", "WorkflowClientUser"]
