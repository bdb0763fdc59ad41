"""``deploy/`` kept in step with the code (no Docker engine needed): every ``bullflow`` command the
Dockerfile, the compose file and the Kubernetes Deployment run parses with the real CLI parser,
its node registry and blueprint paths exist in the image, every environment variable they give a
bullflow process is one the code reads, and the stop grace periods outlast the workers' drain."""

from __future__ import annotations

import argparse
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from bullflow.cli import build_parser, load_blueprint_paths, load_registry_or_runtime

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
LIBRARY = ROOT / "python" / "bullflow"
# The image: WORKDIR /app holds a copy of these repository paths.
IMAGE_WORKDIR_COPIES = ("examples",)
# Variables the Python interpreter itself reads.
PYTHON_VARIABLES = {"PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}
# Where each bullflow command reads its environment: the CLI, the core switch, and the API's settings.
COMMON_READERS = ("cli.py", "_impl.py", "settings.py")
READERS = {"serve": (*COMMON_READERS, "api")}


# ------------------------------------------------------------------------------- Dockerfile
def dockerfile_instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of deploy/Dockerfile, continuation lines joined."""
    text = (DEPLOY / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def exec_form(arguments: str) -> list[str]:
    value = json.loads(arguments)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), arguments
    return value


def dockerfile(instruction: str) -> list[str]:
    return [rest for word, rest in dockerfile_instructions() if word == instruction]


def image_entrypoint() -> list[str]:
    (entrypoint,) = dockerfile("ENTRYPOINT")
    return exec_form(entrypoint)


# ------------------------------------------------------------------------------- the checks
def bullflow_args(argv: list[str], where: str) -> list[str]:
    """The arguments after the ``bullflow`` program in ``argv``."""
    programs = [i for i, arg in enumerate(argv) if Path(arg).name == "bullflow"]
    assert programs, f"{where}: runs no bullflow command: {argv}"
    return argv[programs[0] + 1 :]


def subcommands(parser: argparse.ArgumentParser) -> set[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


def parse(args: list[str], where: str) -> argparse.Namespace:
    """``args`` parsed by the real ``bullflow`` parser (an unknown subcommand or option fails)."""
    parser = build_parser()
    known = subcommands(parser)
    if not args or args[0] not in known:
        pytest.fail(
            f"{where}: `bullflow {args[0] if args else ''}` is not a subcommand of "
            f"bullflow.cli.build_parser() (known: {', '.join(sorted(known))})"
        )
    try:
        return parser.parse_args(args)
    except SystemExit as exit:
        pytest.fail(f"{where}: `bullflow {shlex.join(args)}` does not parse (exit {exit.code}; see stderr)")


def check_command(args: list[str], where: str) -> argparse.Namespace:
    ns = parse(args, where)
    if ns.command == "worker":
        # the image's working directory holds the examples: TARGET and --blueprints resolve there
        with pytest.MonkeyPatch.context() as patch:
            patch.chdir(ROOT)
            load_registry_or_runtime(ns.target)
            load_blueprint_paths(ns.blueprints)
        for path in ns.blueprints:
            assert Path(path).parts[0] in IMAGE_WORKDIR_COPIES, f"{where}: {path} is not in the image"
        assert ns.processes is None or ns.processes >= 1
    if ns.command in ("worker", "durable-worker", "serve"):
        assert "@" not in str(getattr(ns, "redis_url", None) or ""), (
            f"{where}: a password on the command line"
        )
    return ns


def library_text(readers: tuple[str, ...]) -> str:
    parts = []
    for name in readers:
        path = LIBRARY / name
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        parts.extend(f.read_text() for f in files)
    return "\n".join(parts)


def check_environment(names: list[str], command: str, where: str) -> None:
    text = library_text(READERS.get(command, COMMON_READERS))
    for name in names:
        if name in PYTHON_VARIABLES:
            continue
        assert name.startswith("BULLFLOW_"), f"{where}: {name} is not a bullflow variable"
        assert f'"{name}"' in text, f"{where}: `bullflow {command}` never reads {name}"


def seconds(value: Any) -> float:
    """``45s``, ``1m30s``, ``45`` -> seconds."""
    text = str(value)
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    total = 0.0
    for amount, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text):
        total += float(amount) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    assert total, f"not a duration: {value!r}"
    return total


# ------------------------------------------------------------------------------- the tests
def test_the_dockerfile_builds_the_wheel_with_the_api_extra_and_runs_bullflow_as_non_root() -> None:
    froms = dockerfile("FROM")
    assert any("rust" in rest or "rustup" in rest for rest in dockerfile("RUN")), "no Rust toolchain"
    assert len(froms) == 2 and " AS build" in froms[0], froms
    (arg,) = [a for a in dockerfile("ARG") if a.startswith("PYTHON_IMAGE=")]
    assert arg == "PYTHON_IMAGE=python:3.11-slim"
    assert any("maturin build" in run for run in dockerfile("RUN"))
    assert any('.whl)[api]"' in run for run in dockerfile("RUN")), "the wheel is not installed with [api]"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r"^api = \[", pyproject, re.M), "pyproject.toml has no `api` extra"
    for rest in dockerfile("COPY"):
        if rest.startswith("--from"):
            continue
        *sources, _ = rest.split()
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
    (user,) = dockerfile("USER")
    assert user.split(":")[0] not in ("0", "root")
    entrypoint = image_entrypoint()
    assert entrypoint[0] == "tini" and entrypoint[-1] == "bullflow"
    (cmd,) = dockerfile("CMD")
    ns = check_command(bullflow_args(entrypoint + exec_form(cmd), "Dockerfile CMD"), "Dockerfile CMD")
    assert ns.command == "serve"
    (healthcheck,) = dockerfile("HEALTHCHECK")
    assert f"127.0.0.1:{ns.port}/healthz" in healthcheck
    for rest in dockerfile("ENV"):
        names = re.findall(r"(?:^|\s)([A-Z][A-Z0-9_]*)=", rest)
        for name in names:
            assert name in PYTHON_VARIABLES or name.startswith(("RUSTUP_", "CARGO_", "PATH")), name


def test_the_compose_file_runs_redis_with_aof_the_api_and_supervised_workers() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    redis = services["redis"]
    command = " ".join(redis["command"]) if isinstance(redis["command"], list) else redis["command"]
    assert "--appendonly yes" in command
    volume = redis["volumes"][0].split(":")
    assert volume[1] == "/data" and volume[0] in compose["volumes"]
    commands = {}
    for name, service in services.items():
        if service.get("image", "").split(":")[0] != "bullflow":
            continue
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        where = f"docker-compose.yml service {name}"
        ns = check_command(bullflow_args(image_entrypoint() + service["command"], where), where)
        check_environment(list(service.get("environment", {})), ns.command, where)
        assert "BULLFLOW_REDIS_URL" in service["environment"], f"{where}: no Redis URL"
        # docker stops with SIGTERM, then SIGKILL after the grace period (10 s unless set)
        grace = seconds(service.get("stop_grace_period", "10s"))
        assert grace > ns.shutdown_timeout, f"{where}: stop_grace_period {grace} s <= --shutdown-timeout"
        commands[ns.command] = (service, ns)
    assert set(commands) == {"serve", "worker"}, commands
    _, ns = commands["worker"]
    assert ns.processes and ns.processes > 1
    api, ns = commands["serve"]
    assert "BULLFLOW_API_TOKENS" in api["environment"]
    assert any(str(port).endswith(f":{ns.port}") for port in api["ports"])


def test_the_kubernetes_deployment_runs_supervised_workers_that_drain_in_time() -> None:
    deployment = yaml.safe_load((DEPLOY / "k8s" / "worker-deployment.yaml").read_text())
    assert deployment["kind"] == "Deployment"
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    argv = container.get("command", image_entrypoint()) + container["args"]
    where = "k8s/worker-deployment.yaml"
    ns = check_command(bullflow_args(argv, where), where)
    assert ns.command == "worker"
    assert pod["terminationGracePeriodSeconds"] > ns.shutdown_timeout
    names = [env["name"] for env in container["env"]]
    check_environment(names, ns.command, where)
    assert "BULLFLOW_REDIS_URL" in names
    resources = container["resources"]
    assert {"cpu", "memory"} <= resources["requests"].keys() and {"cpu", "memory"} <= resources[
        "limits"
    ].keys()


def test_the_checks_catch_drift() -> None:
    """The checks above fail on an option or variable the code does not have."""
    with pytest.raises(pytest.fail.Exception, match="does not parse"):
        check_command(["worker", "examples.llm_nodes:REGISTRY", "--no-such-option"], "test")
    with pytest.raises(pytest.fail.Exception, match="not a subcommand"):
        check_command(["no-such-command"], "test")
    with pytest.raises(AssertionError, match="never reads BULLFLOW_NO_SUCH"):
        check_environment(["BULLFLOW_NO_SUCH"], "worker", "test")
    with pytest.raises(AssertionError, match="never reads BULLFLOW_API_TOKENS"):
        check_environment(["BULLFLOW_API_TOKENS"], "worker", "test")
