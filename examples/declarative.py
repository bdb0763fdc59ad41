"""The four declarative use cases of Flowcraft's LLM workflow examples (spec §8.1): their
blueprints (from ``examples/blueprints``, id = file name) and initial contexts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bullflow import Blueprint, FlowRuntime, load_blueprint

from .llm_nodes import REGISTRY

BLUEPRINT_DIR = Path(__file__).parent / "blueprints"


@dataclass(frozen=True)
class UseCase:
    name: str
    entry: str
    initial_context: dict[str, Any] = field(default_factory=dict)
    final_node: str = ""


USE_CASES = {
    "blog-post": UseCase(
        "blog-post", "100", {"topic": "Why event-driven schedulers beat waves"}, "final_output"
    ),
    "job-application": UseCase(
        "job-application",
        "200",
        {
            "applicantName": "Jane Doe",
            "resume": "Experienced engineer. Skills: TypeScript, Node.js, SQL, Docker, AWS.",
            "coverLetter": "Dear Hiring Manager, I am excited to apply for the position.",
        },
        "final_output",
    ),
    "customer-review": UseCase(
        "customer-review",
        "300",
        {"initial_review": "The product arrived broken and support was terrible. I want a refund."},
        "final_step",
    ),
    "content-moderation": UseCase(
        "content-moderation",
        "400",
        {
            "userId": "user-456",
            "userPost": "Hi, I need help with my account. My email is test@example.com and my phone is 555-123-4567.",
        },
        "final_log",
    ),
}


def load_example_blueprints() -> dict[str, Blueprint]:
    return {p.stem: load_blueprint(p) for p in sorted(BLUEPRINT_DIR.glob("*.json"))}


def make_runtime(**options: Any) -> FlowRuntime:
    return FlowRuntime(registry=REGISTRY, blueprints=load_example_blueprints(), **options)
