"""`make loadtest-http` in small: ``loadtest/http_run.py`` (its own redis-server, two worker
processes, the HTTP API, locust headless; runs followed by polling and by server-sent events) for
5 s with 4 users must exit 0, report a nonzero request rate and no lost run."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(120)
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_loadtest_http_runner_smoke(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "loadtest.http_run", "--run-time", "5s", "--users", "4"),
            *("--run-timeout", "10", "--settle", "10", "--csv-prefix", str(tmp_path / "smoke")),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    match = re.search(r"^requests/s: ([0-9.]+)$", proc.stdout, re.M)
    assert match is not None, proc.stdout[-3000:]
    assert float(match.group(1)) > 0
    assert re.search(r"^runs/s: [1-9]", proc.stdout, re.M), proc.stdout[-3000:]
    assert "lost runs: 0" in proc.stdout
    assert (tmp_path / "smoke_stats.csv").exists()
