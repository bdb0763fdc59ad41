"""The durable example runs as documented."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_signup_example_runs(redis_server: str, key_prefix: str) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "examples.durable_signup",
            "--redis-url",
            redis_server,
            "--prefix",
            key_prefix,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["result"]["sent"] == "welcome mail to ada@example.com"
    assert report["result"]["verified_at"] == "2026-11-22T10:00:00Z"
    log = report["log"]
    assert log[0] == "WORKFLOW_QUEUED" and log[-1] == "WORKFLOW_SUCCESS"
    assert "WAIT_COMPLETE" in log and "SLEEP_COMPLETE" in log
