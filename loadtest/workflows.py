"""Scenario ``workflows``: each user starts runs of a mix of shapes -- a 20-node chain, a 20-wide
fan-out into an all-join, a 4-node diamond (weights 1/1/3) -- one at a time with a short pause,
and waits for each run's status. ``make loadtest`` runs it (``loadtest/run.py``); by hand, with
redis-server and workers already running:

    locust --config loadtest/locust.conf -f loadtest/workflows.py --host redis://127.0.0.1:PORT/0 \\
        --bullflow-queue QUEUE [-f loadtest/workflows.py,loadtest/step_shape.py for the step load]
"""

from __future__ import annotations

from locust import between, task

from loadtest.common import WorkflowClientUser


class WorkflowsUser(WorkflowClientUser):
    wait_time = between(0.005, 0.02)

    @task(1)
    def chain(self) -> None:
        self.run_workflow("chain-20")

    @task(1)
    def fanout(self) -> None:
        self.run_workflow("fanout-20")

    @task(3)
    def diamond(self) -> None:
        self.run_workflow("diamond")
