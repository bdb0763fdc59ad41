"""A step load: ``STEP_USERS`` more users every ``STEP_SECONDS`` up to ``MAX_USERS``, held until
``TIME_LIMIT`` seconds (or ``--run-time``, which locust itself ignores when a shape is used), then the
test stops. Add it to a
scenario with ``-f loadtest/workflows.py,loadtest/step_shape.py`` (``loadtest/run.py --step``);
it overrides ``--users`` and ``--spawn-rate``."""

from __future__ import annotations

from locust import LoadTestShape


class StepLoadShape(LoadTestShape):
    STEP_USERS = 5
    STEP_SECONDS = 10
    MAX_USERS = 30
    TIME_LIMIT = 120

    def tick(self) -> tuple[int, float] | None:
        run_time = self.get_run_time()
        options = getattr(self.runner.environment, "parsed_options", None) if self.runner else None
        limit = (
            getattr(options, "run_time", None) or self.TIME_LIMIT
        )  # locust ignores --run-time with a shape
        if run_time >= min(limit, self.TIME_LIMIT):
            return None
        users = min(self.MAX_USERS, (int(run_time // self.STEP_SECONDS) + 1) * self.STEP_USERS)
        return users, float(self.STEP_USERS)
