"""The four declarative use cases of spec §8.1 with the deterministic stub LLM: all complete and
reach their final node (blueprints 200 and 300 converge exclusive branches into an 'all' join)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from examples.declarative import USE_CASES, load_example_blueprints, make_runtime
from examples.llm_nodes import REGISTRY

from bullflow import lint_blueprint

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(USE_CASES))
async def test_use_case_completes_and_reaches_its_final_node(name: str) -> None:
    case = USE_CASES[name]
    result = await make_runtime().run(case.entry, case.initial_context)
    assert result.status == "completed", result.errors
    assert f"_outputs.{case.final_node}" in result.context


async def test_content_moderation_redacts_pii() -> None:
    case = USE_CASES["content-moderation"]
    result = await make_runtime().run(case.entry, case.initial_context)
    assert result.context["_outputs.triage_post"] == "action_redact"
    assert result.context["final_output"].startswith("--- CONTENT MODERATION COMPLETE ---")
    assert "[REDACTED]" in result.context["final_output"]
    assert "test@example.com" not in result.context["final_output"]
    assert sorted(result.skipped_node_ids) == ["approve_post_branch", "ban_user_branch", "delete_spam_branch"]


async def test_job_application_takes_one_branch_and_joins() -> None:
    case = USE_CASES["job-application"]
    result = await make_runtime().run(case.entry, case.initial_context)
    assert result.context["_outputs.check_qualifications"] == "true"
    assert "send_interview_email" in result.context
    assert "_outputs.send_rejection_email" not in result.context
    assert result.context["final_output"].startswith("Final email sent to Jane Doe")


async def test_customer_review_negative_path_fans_out_and_joins() -> None:
    case = USE_CASES["customer-review"]
    result = await make_runtime().run(case.entry, case.initial_context)
    assert result.context["_outputs.check_sentiment"] == "false"
    assert "_outputs.send_to_ticketing_system" in result.context
    assert "_outputs.send_email_to_customer" in result.context
    assert result.skipped_node_ids == ["positive_branch"]


def test_example_blueprints_lint_clean() -> None:
    blueprints = load_example_blueprints()
    assert sorted(blueprints) == ["100", "200", "201", "202", "300", "301", "302", "400", "401", "402", "403"]
    for bp in blueprints.values():
        assert lint_blueprint(bp, REGISTRY, blueprints).issues == []


def test_make_demo_prints_the_final_output() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "examples.content_moderation"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert ": completed" in out.stdout
    assert "--- CONTENT MODERATION COMPLETE ---" in out.stdout
