"""The HTTP API of bullflow (``bullflow serve``): a FastAPI app on uvicorn that registers
blueprints, starts and follows runs, controls durable workflow instances, reports metrics and
serves the dashboard (``/ui``).

``create_app(ApiSettings.from_env())`` builds it; ``ApiSettings`` documents every setting.
"""

from __future__ import annotations

from .app import create_app
from .settings import ApiSettings

__all__ = ["ApiSettings", "create_app"]
