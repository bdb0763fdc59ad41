"""The ``bullflow`` command (also ``python -m bullflow.cli``).

* ``bullflow worker TARGET`` -- serve a queue: TARGET is ``module:attribute`` naming a node registry
  (``uses`` key -> implementation) or a :class:`~bullflow.FlowRuntime`. SIGTERM/SIGINT stop taking
  jobs and finish the nodes that run; a second signal stops at once. ``--processes N`` runs N such
  worker processes under a supervisor (:mod:`bullflow.supervisor`) that restarts crashed ones and
  forwards the signals. Every worker process heartbeats (:mod:`bullflow.fleet`).
* ``bullflow run BLUEPRINT`` -- run a blueprint (a JSON file or an id from ``--blueprints``)
  in-process, or on the workers of a queue with ``--redis-url``; prints the result as JSON.
* ``bullflow reconcile`` -- one pass of the reconciler over stalled runs; prints its stats as JSON.
* ``bullflow status RUN_ID`` -- the status a distributed run published (or ``running``).
* ``bullflow durable-worker MODULE`` -- run durable step workflows (``bullflow.durable``): imports
  MODULE, whose ``WorkflowEntrypoint`` subclasses it serves. Signals and ``--processes`` as for
  ``worker``.
* ``bullflow durable-reconcile`` -- one pass of the durable reconciler; prints its stats as JSON.
* ``bullflow serve`` -- the HTTP API and the dashboard (:mod:`bullflow.api`) on uvicorn; bearer
  tokens and the other settings from options or the environment (``ApiSettings.from_env``).

Exit codes: 0 ok, 1 the run did not complete (failed, cancelled, awaiting, timed out) or the
worker stopped on an error, 2 a usage or input error (one line on stderr naming what is wrong).
This module is the only place bullflow configures logging.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib
import importlib.util
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, cast

from . import keys
from .blueprint import Blueprint, load_blueprint
from .exceptions import BullflowError

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from .nodes import NodeImplementation
    from .runtime import FlowRuntime
    from .settings import RedisSettings

__all__ = ["main"]

logger = logging.getLogger("bullflow.cli")

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
REDIS_URL_ENV = "BULLFLOW_REDIS_URL"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d]: %(message)s"

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_USAGE = 2


class InputError(Exception):
    """A usage or input problem: reported as one line on stderr, exit code 2."""


# ---------------------------------------------------------------------------------- loading
def _import_module(module_name: str, where: str) -> Any:
    """Import ``module_name`` with the current directory on ``sys.path``; an InputError that
    starts with ``where`` when that fails."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name is not None and (module_name == err.name or module_name.startswith(err.name + ".")):
            raise InputError(f"{where}: module {module_name!r} not found") from None
        raise InputError(f"{where}: importing module {module_name!r} failed: {err}") from None
    except Exception as err:
        raise InputError(
            f"{where}: importing module {module_name!r} failed: {type(err).__name__}: {err}"
        ) from None


def load_target(spec: str, what: str = "TARGET") -> Any:
    """The object ``module:attribute`` names (``attribute`` may be dotted), importing ``module``
    with the current directory on ``sys.path``."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise InputError(f"{what} {spec!r} must be 'module:attribute' (e.g. examples.llm_nodes:REGISTRY)")
    module = _import_module(module_name, f"{what} {spec!r}")
    value: Any = module
    for part in attribute.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise InputError(
                f"{what} {spec!r}: module {module_name!r} has no attribute {attribute!r}"
            ) from None
    return value


def load_registry_or_runtime(
    spec: str, what: str = "TARGET"
) -> tuple[Mapping[str, NodeImplementation] | None, FlowRuntime | None]:
    """``(registry, None)`` or ``(None, runtime)`` for a ``module:attribute`` spec."""
    from .runtime import FlowRuntime

    value = load_target(spec, what)
    if isinstance(value, FlowRuntime):
        return None, value
    if isinstance(value, Mapping):
        bad = next((k for k in value if not isinstance(k, str)), None)
        if bad is not None:
            raise InputError(f"{what} {spec!r}: registry keys must be strings, got {bad!r}")
        bad = next((k for k, v in value.items() if not callable(v)), None)
        if bad is not None:
            raise InputError(
                f"{what} {spec!r}: registry entry {bad!r} is a {type(value[bad]).__name__}, "
                "not a node function or class"
            )
        return value, None
    raise InputError(
        f"{what} {spec!r} is a {type(value).__name__}; expected a registry mapping "
        "(uses-key -> node implementation) or a FlowRuntime"
    )


def load_blueprint_paths(paths: Sequence[str]) -> dict[str, Blueprint]:
    """Blueprints from JSON files and directories of ``*.json`` files. A file holds one blueprint
    (its id defaults to the file name without ``.json``) or a list of blueprints with ids."""
    found: dict[str, Blueprint] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(path.glob("*.json"))
            if not files:
                raise InputError(f"--blueprints {raw!r}: the directory holds no *.json files")
        elif path.is_file():
            files = [path]
        else:
            raise InputError(f"--blueprints {raw!r}: no such file or directory")
        for file in files:
            for bp in _load_blueprint_file(file):
                found[bp.id] = bp
    return found


def _load_blueprint_file(path: Path) -> list[Blueprint]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read blueprint file {str(path)!r}: {err}") from None
    try:
        if text.lstrip().startswith("["):
            items = json.loads(text)
            return [load_blueprint(item) for item in items]
        return [load_blueprint(path)]
    except json.JSONDecodeError as err:
        raise InputError(f"blueprint file {str(path)!r}: malformed JSON: {err}") from None
    except BullflowError as err:
        raise InputError(f"blueprint file {str(path)!r}: {err}") from None


def _parse_context(args: argparse.Namespace) -> dict[str, Any]:
    if args.context is not None:
        source, text = "--context", args.context
    elif args.context_file is not None:
        source = f"--context-file {args.context_file!r}"
        try:
            text = Path(args.context_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise InputError(f"{source}: cannot read it: {err}") from None
    else:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"{source}: malformed JSON: {err}") from None
    if not isinstance(value, dict):
        raise InputError(f"{source}: expected a JSON object, got {type(value).__name__}")
    return value


def _settings(url: str) -> RedisSettings:
    from .settings import RedisSettings

    try:
        return RedisSettings.from_url(url)
    except BullflowError as err:
        raise InputError(f"--redis-url: {err}") from None


async def _connect(settings: RedisSettings) -> Redis:
    """A client of the server, pinged (an unreachable server is an input error: the URL)."""
    from redis.exceptions import RedisError

    redis = settings.client()
    try:
        await cast("Any", redis.ping())
    except (RedisError, OSError) as err:
        await redis.aclose()
        raise InputError(f"--redis-url: cannot reach Redis at {settings.url()}: {err}") from None
    return redis


def _write_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


# ----------------------------------------------------------------------------------- worker
def _check_fleet_args(args: argparse.Namespace) -> None:
    from .fleet import MAX_HEARTBEAT_INTERVAL, MIN_HEARTBEAT_INTERVAL

    if args.concurrency < 1:
        raise InputError(f"--concurrency must be at least 1, got {args.concurrency}")
    if args.processes is not None and args.processes < 1:
        raise InputError(f"--processes must be at least 1, got {args.processes}")
    interval = args.heartbeat_interval
    if interval and not MIN_HEARTBEAT_INTERVAL <= interval <= MAX_HEARTBEAT_INTERVAL:
        raise InputError(
            f"--heartbeat-interval must be 0 (off) or between {MIN_HEARTBEAT_INTERVAL} and "
            f"{MAX_HEARTBEAT_INTERVAL:g} seconds, got {interval}"
        )


def _supervise(args: argparse.Namespace) -> int:
    """Run ``--processes`` copies of this very command line (each with ``--processes 1``) under
    a :class:`~bullflow.supervisor.Supervisor`; its exit code."""
    from .supervisor import Supervisor

    command = [sys.executable, "-m", "bullflow.cli", *args.argv, "--processes", "1"]
    return Supervisor(command, args.processes, name=args.command).run()


def cmd_worker(args: argparse.Namespace) -> int:
    _check_fleet_args(args)
    if args.processes is not None and args.processes > 1:
        return _supervise(args)
    registry, runtime = load_registry_or_runtime(args.target)
    blueprints = load_blueprint_paths(args.blueprints)
    settings = _settings(args.redis_url)
    if args.coordination == "python" and importlib.util.find_spec("bullflow.python_coordination") is None:
        raise InputError("--coordination python: bullflow.python_coordination is not available")
    asyncio.run(_serve(args, settings, registry, runtime, blueprints))
    raise AssertionError("unreachable: _serve exits the process")  # pragma: no cover


async def _serve(
    args: argparse.Namespace,
    settings: RedisSettings,
    registry: Mapping[str, NodeImplementation] | None,
    runtime: FlowRuntime | None,
    blueprints: Mapping[str, Blueprint],
) -> NoReturn:
    """Serve until a signal; then exit the process from inside the loop (bullmq's leftover tasks
    can make asyncio.run's teardown hang for seconds)."""
    from .adapter import BullMQAdapter

    redis = await _connect(settings)
    await redis.aclose()
    adapter = BullMQAdapter(
        registry=registry,
        runtime=runtime,
        blueprints=blueprints or None,
        connection=settings,
        queue_name=args.queue,
        coordination_store=args.coordination,
        concurrency=args.concurrency,
        lock_duration_ms=args.lock_duration_ms,
        stalled_interval_ms=args.stalled_interval_ms,
        worker_loop=args.worker_loop,
        heartbeat_interval=args.heartbeat_interval or None,
    )
    stop = _stop_on_signals(
        "stopping; finishing the nodes that run (again to stop at once)",
        "stopping at once; unfinished jobs go back to the queue",
    )

    adapter.start()
    count = len(adapter.runtime.blueprints)
    logger.info(
        "worker ready: queue %r on %s, concurrency %d, %d blueprint%s, %d node types",
        args.queue,
        settings.url(),
        adapter.concurrency,
        count,
        "" if count == 1 else "s",
        len(adapter.runtime.registry),
    )
    serving = asyncio.create_task(adapter.run())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    code = EXIT_OK
    if not stop.is_set():
        error = None if serving.cancelled() else serving.exception()
        logger.error("the worker stopped unexpectedly: %s", error or "its job loop ended")
        code = EXIT_RUN_FAILED
    stopping.cancel()
    await adapter.close(timeout=args.shutdown_timeout)
    if not serving.done():
        serving.cancel()
    logger.info("worker stopped after %d jobs", adapter.jobs_processed)
    _hard_exit(code)


def _stop_on_signals(first: str, second: str) -> asyncio.Event:
    """SIGTERM/SIGINT handlers for a worker process: the first signal sets the returned event (the
    caller drains), a second exits at once. ``first``/``second`` are logged after the signal name."""
    stop = asyncio.Event()
    seen: list[str] = []

    def on_signal(signum: int) -> None:
        name = signal.Signals(signum).name
        seen.append(name)
        if len(seen) == 1:
            logger.info("%s: %s", name, first)
            stop.set()
        else:
            logger.warning("%s (second signal): %s", name, second)
            _hard_exit(EXIT_RUN_FAILED)

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    return stop


def _hard_exit(code: int) -> NoReturn:
    """Flush what was written and leave without running interpreter teardown."""
    with contextlib.suppress(Exception):
        logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


# --------------------------------------------------------------------------- durable worker
def _durable_settings(args: argparse.Namespace) -> Any:
    from .settings import DurableSettings

    try:
        return DurableSettings(
            prefix=args.prefix,
            queue_name=args.queue,
            queue_prefix=args.queue_prefix,
            **(
                {
                    "lease_ms": args.lease_ms,
                    "inline_threshold": args.inline_threshold,
                    "job_lock_ms": args.job_lock_ms,
                    "stalled_interval_ms": args.stalled_interval_ms,
                    "step_limit": args.step_limit,
                    "reconcile_grace_seconds": args.reconcile_grace,
                }
                if hasattr(args, "lease_ms")
                else {"reconcile_grace_seconds": args.reconcile_grace}
            ),
        )
    except BullflowError as err:
        raise InputError(str(err)) from None


def cmd_durable_worker(args: argparse.Namespace) -> int:
    from .durable.entrypoint import registered_workflows

    _check_fleet_args(args)
    if args.processes is not None and args.processes > 1:
        return _supervise(args)
    settings = _settings(args.redis_url)
    durable = _durable_settings(args)
    for name in args.module:
        _import_module(name, "MODULE")
    workflows = registered_workflows()
    if not workflows:
        raise InputError(f"MODULE {', '.join(args.module)}: defines no WorkflowEntrypoint subclass")
    ctx = load_target(args.ctx, "--ctx") if args.ctx else None
    env = load_target(args.env, "--env") if args.env else None
    asyncio.run(_serve_durable(args, settings, durable, workflows, ctx, env))
    raise AssertionError("unreachable: _serve_durable exits the process")  # pragma: no cover


async def _serve_durable(
    args: argparse.Namespace, settings: RedisSettings, durable: Any, workflows: Any, ctx: Any, env: Any
) -> NoReturn:
    from .durable.worker import WorkflowWorkers

    redis = await _connect(settings)
    await redis.aclose()
    workers = WorkflowWorkers(
        settings,
        ctx,
        env,
        concurrency=args.concurrency,
        workflows=workflows.values(),
        settings=durable,
        reconcile_interval=args.reconcile_interval or None,
        heartbeat_interval=args.heartbeat_interval or None,
    )
    stop = _stop_on_signals(
        "stopping; finishing the activations that run (again to stop at once)",
        "stopping at once; leases expire and others take over",
    )
    await workers.start()
    logger.info(
        "durable worker ready: queue %r on %s, concurrency %d, workflows %s",
        durable.queue_name,
        settings.url(),
        args.concurrency,
        ", ".join(sorted(workflows)),
    )
    await stop.wait()
    try:
        await asyncio.wait_for(workers.close(), args.shutdown_timeout)
    except (asyncio.TimeoutError, TimeoutError):
        logger.warning("activations still running after %s s; stopping anyway", args.shutdown_timeout)
    logger.info("durable worker stopped after %d activations", workers.activations)
    _hard_exit(EXIT_OK)


def cmd_durable_reconcile(args: argparse.Namespace) -> int:
    from .durable.reconciler import DurableReconciler
    from .durable.store import DurableStore

    settings = _settings(args.redis_url)
    durable = _durable_settings(args)

    async def reconcile() -> Any:
        redis = await _connect(settings)
        await redis.aclose()
        store = DurableStore(settings, durable)
        try:
            return await DurableReconciler(store).run_once()
        finally:
            await store.close()

    stats = asyncio.run(reconcile())
    _write_json(stats.to_dict())
    return EXIT_OK


# -------------------------------------------------------------------------------------- run
def cmd_run(args: argparse.Namespace) -> int:
    registry: Mapping[str, NodeImplementation] | None = None
    runtime: FlowRuntime | None = None
    if args.registry is not None:
        registry, runtime = load_registry_or_runtime(args.registry, "--registry")
    blueprints = load_blueprint_paths(args.blueprints)
    if runtime is not None:
        blueprints = {**runtime.blueprints, **blueprints}
    blueprint = _select_blueprint(args.blueprint, blueprints)
    blueprints[blueprint.id] = blueprint
    context = _parse_context(args)
    if args.timeout is not None and args.timeout <= 0:
        raise InputError(f"--timeout must be positive, got {args.timeout}")
    if args.redis_url is None:
        result = asyncio.run(_run_in_process(blueprint, context, registry, runtime, blueprints, args.timeout))
    else:
        result = asyncio.run(_run_distributed(blueprint, context, blueprints, args))
    if result is None:
        return EXIT_RUN_FAILED
    _write_json(result.to_dict())
    if result.status != "completed":
        for error in result.errors:
            where = f"node {error.node_id!r}: " if error.node_id else ""
            logger.error("run %s %s: %s%s", result.run_id, result.status, where, error.message)
        return EXIT_RUN_FAILED
    return EXIT_OK


def _select_blueprint(spec: str, blueprints: Mapping[str, Blueprint]) -> Blueprint:
    """BLUEPRINT is a file when one exists at that path, else an id of ``--blueprints``."""
    path = Path(spec)
    if path.is_file():
        loaded = _load_blueprint_file(path)
        if len(loaded) != 1:
            raise InputError(f"BLUEPRINT {spec!r}: the file holds {len(loaded)} blueprints; name one by id")
        return loaded[0]
    if spec in blueprints:
        return blueprints[spec]
    if spec.endswith(".json") or os.sep in spec:
        raise InputError(f"BLUEPRINT {spec!r}: no such file")
    known = ", ".join(sorted(blueprints)) or "none; pass --blueprints PATH"
    raise InputError(f"BLUEPRINT {spec!r}: unknown blueprint (no such file or id; known ids: {known})")


async def _run_in_process(
    blueprint: Blueprint,
    context: dict[str, Any],
    registry: Mapping[str, NodeImplementation] | None,
    runtime: FlowRuntime | None,
    blueprints: Mapping[str, Blueprint],
    timeout: float | None,
) -> Any:
    from .runtime import FlowRuntime

    if runtime is None:
        runtime = FlowRuntime(registry=registry, blueprints=blueprints)
    else:
        for key, bp in blueprints.items():
            runtime.register_blueprint(bp, id=key)
    try:
        return await asyncio.wait_for(runtime.run(blueprint, context), timeout)
    except (asyncio.TimeoutError, TimeoutError):
        logger.error("blueprint %r did not finish within %s s", blueprint.id, timeout)
        return None
    except BullflowError as err:
        raise InputError(f"BLUEPRINT {blueprint.id!r}: {err}") from None


async def _run_distributed(
    blueprint: Blueprint,
    context: dict[str, Any],
    blueprints: Mapping[str, Blueprint],
    args: argparse.Namespace,
) -> Any:
    from .client import Client

    settings = _settings(args.redis_url)
    redis = await _connect(settings)
    await redis.aclose()
    client = Client(blueprints=blueprints, connection=settings, queue_name=args.queue)
    try:
        try:
            handle = await client.start(blueprint.id, context)
        except BullflowError as err:
            raise InputError(f"BLUEPRINT {blueprint.id!r}: {err}") from None
        logger.info("started run %s of %r on queue %r", handle.run_id, blueprint.id, args.queue)
        try:
            return await handle.result(args.timeout)
        except TimeoutError:
            logger.error(
                "run %s did not finish within %s s (it goes on; `bullflow status %s`)",
                handle.run_id,
                args.timeout,
                handle.run_id,
            )
            return None
    finally:
        await client.close()


# -------------------------------------------------------------------------------- reconcile
def cmd_reconcile(args: argparse.Namespace) -> int:
    try:
        from .reconciler import create_bullmq_reconciler
    except ImportError as err:
        raise InputError(f"reconcile is not available: {err}") from None
    registry: Mapping[str, NodeImplementation] | None = None
    runtime: FlowRuntime | None = None
    if args.registry is not None:
        registry, runtime = load_registry_or_runtime(args.registry, "--registry")
    blueprints = load_blueprint_paths(args.blueprints)
    settings = _settings(args.redis_url)
    if args.stalled_threshold < 0:
        raise InputError(f"--stalled-threshold must not be negative, got {args.stalled_threshold}")
    if args.scan_count < 1:
        raise InputError(f"--scan-count must be at least 1, got {args.scan_count}")

    async def reconcile() -> Any:
        from .adapter import BullMQAdapter

        redis = await _connect(settings)
        adapter = BullMQAdapter(
            registry=registry,
            runtime=runtime,
            blueprints=blueprints or None,
            connection=settings,
            queue_name=args.queue,
        )
        try:
            reconciler = create_bullmq_reconciler(
                adapter=adapter,
                redis=redis,
                stalled_threshold_seconds=args.stalled_threshold,
                key_prefix=keys.STATE_PREFIX,
                scan_count=args.scan_count,
            )
            return await reconciler.run()
        finally:
            await adapter.close()
            await redis.aclose()

    stats = asyncio.run(reconcile())
    if callable(getattr(stats, "to_dict", None)):
        _write_json(stats.to_dict())  # Flowcraft's field names (scannedKeys, ...)
    elif dataclasses.is_dataclass(stats) and not isinstance(stats, type):
        _write_json(dataclasses.asdict(stats))
    else:
        _write_json(vars(stats))
    return EXIT_OK


# ----------------------------------------------------------------------------------- status
def cmd_status(args: argparse.Namespace) -> int:
    settings = _settings(args.redis_url)

    async def read() -> tuple[Any, bool]:
        redis = await _connect(settings)
        try:
            raw = await redis.get(keys.status_key(args.run_id))
            exists = raw is None and bool(await redis.exists(keys.run_key(args.run_id)))
            return raw, exists
        finally:
            await redis.aclose()

    raw, running = asyncio.run(read())
    if raw is not None:
        try:
            _write_json(json.loads(raw))
        except json.JSONDecodeError:
            raise InputError(f"{keys.status_key(args.run_id)} does not hold JSON") from None
        return EXIT_OK
    if running:
        _write_json({"runId": args.run_id, "status": "running"})
        return EXIT_OK
    raise InputError(
        f"unknown run {args.run_id!r} (no {keys.status_key(args.run_id)} or {keys.run_key(args.run_id)})"
    )


# ------------------------------------------------------------------------------------ serve
def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .api import ApiSettings, create_app
    from .settings import DurableSettings

    for name in args.durable_module:
        _import_module(name, "--durable-module")
    try:
        durable = None
        if args.durable_prefix or args.durable_queue:
            durable = DurableSettings(
                prefix=args.durable_prefix
                or os.environ.get("BULLFLOW_DURABLE_PREFIX")
                or keys.DEFAULT_DURABLE_PREFIX,
                queue_name=args.durable_queue
                or os.environ.get("BULLFLOW_DURABLE_QUEUE")
                or keys.DEFAULT_DURABLE_QUEUE,
            )
        settings = ApiSettings.from_env(
            redis=_settings(args.redis_url) if args.redis_url else None,
            tokens=tuple(args.token) or None,
            auth=False if args.no_auth else None,
            queues=tuple(args.queue) or None,
            durable=durable,
            durable_modules=tuple(args.durable_module) or None,
            max_body_bytes=args.max_body_bytes,
            host=args.host,
            port=args.port,
        )
        app = create_app(settings)
    except BullflowError as err:
        raise InputError(str(err)) from None
    asyncio.run(_ping(settings.redis))
    if not settings.auth:
        logger.warning("authentication is DISABLED (--no-auth): anyone who reaches the port controls runs")
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_config=None,  # the logging configured by main()
            access_log=args.access_log,
            timeout_graceful_shutdown=args.shutdown_timeout,
            server_header=False,
        )
    )
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then raises the signal again with the
    # handler found at start: an ignoring one makes a SIGTERM a clean exit (0), as for `worker`.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    server.run()
    return EXIT_OK


async def _ping(settings: RedisSettings) -> None:
    redis = await _connect(settings)
    await redis.aclose()


# ----------------------------------------------------------------------------------- parser
class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error message (no usage dump) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    default_url = os.environ.get(REDIS_URL_ENV) or DEFAULT_REDIS_URL
    parser = _Parser(
        prog="bullflow",
        description="Run bullflow workflows in-process or on BullMQ workers.",
        epilog="Exit codes: 0 ok, 1 the run did not complete, 2 usage or input error.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def common(p: argparse.ArgumentParser, *, log_default: str = "WARNING") -> None:
        p.add_argument(
            "--log-level",
            default=log_default,
            type=str.upper,
            choices=["DEBUG", "INFO", "WARNING", "ERROR"],
            help=f"logging level on stderr (default {log_default})",
        )

    def redis_url(p: argparse.ArgumentParser, default: str | None, help_text: str) -> None:
        p.add_argument("--redis-url", default=default, metavar="URL", help=help_text)

    def queue(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--queue",
            default=keys.DEFAULT_QUEUE,
            metavar="NAME",
            help=f"queue name (default {keys.DEFAULT_QUEUE})",
        )

    def blueprints(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--blueprints",
            action="append",
            default=[],
            metavar="PATH",
            help="a blueprint JSON file or a directory of *.json files (id = file name when the "
            "blueprint has none); repeatable",
        )

    url_help = f"Redis URL (default ${REDIS_URL_ENV} or {DEFAULT_REDIS_URL})"

    def fleet(p: argparse.ArgumentParser, what: str) -> None:
        from .fleet import DEFAULT_HEARTBEAT_INTERVAL

        p.add_argument(
            "--processes",
            type=int,
            default=None,
            metavar="N",
            help=f"run N {what} processes under a supervisor that restarts crashed ones and forwards "
            "SIGTERM/SIGINT to them (default: this process is the only one)",
        )
        p.add_argument(
            "--heartbeat-interval",
            type=float,
            default=DEFAULT_HEARTBEAT_INTERVAL,
            metavar="S",
            help="seconds between the heartbeats that list this worker as live, 0 = none "
            f"(default {DEFAULT_HEARTBEAT_INTERVAL:g})",
        )

    worker = sub.add_parser(
        "worker",
        help="serve a queue: run the node jobs of distributed runs",
        description="Serve a queue. SIGTERM/SIGINT stop taking jobs and finish the nodes that run; "
        "a second signal stops at once.",
    )
    worker.add_argument(
        "target", metavar="TARGET", help="module:attribute naming a node registry mapping or a FlowRuntime"
    )
    blueprints(worker)
    redis_url(worker, default_url, url_help)
    queue(worker)
    worker.add_argument("--concurrency", type=int, default=10, metavar="N", help="jobs at once (default 10)")
    worker.add_argument(
        "--coordination", choices=["lua", "python"], default="lua", help="coordination store (default lua)"
    )
    worker.add_argument(
        "--worker-loop",
        choices=["fast", "chained", "bullmq"],
        default="fast",
        help="fast: commit, finish and next job in one script call; chained: bullmq's finish-and-fetch "
        "with the commit pipelined; bullmq: the stock bullmq Worker loop (default fast)",
    )
    worker.add_argument(
        "--lock-duration-ms", type=int, default=30_000, metavar="MS", help="job lock duration (default 30000)"
    )
    worker.add_argument(
        "--stalled-interval-ms",
        type=int,
        default=30_000,
        metavar="MS",
        help="how often to look for jobs whose worker died (their lock expired) and queue them again "
        "(default 30000)",
    )
    worker.add_argument(
        "--shutdown-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="on a stop signal, wait this long for running nodes (default 30)",
    )
    fleet(worker, "worker")
    common(worker, log_default="INFO")
    worker.set_defaults(handler=cmd_worker)

    run = sub.add_parser(
        "run",
        help="run a blueprint and print its result as JSON",
        description="Run a blueprint in-process, or with --redis-url on the workers of a queue "
        "(workers must be running). Exit 0 when the run completed, 1 otherwise.",
    )
    run.add_argument(
        "blueprint", metavar="BLUEPRINT", help="a blueprint JSON file, or an id from --blueprints"
    )
    group = run.add_mutually_exclusive_group()
    group.add_argument("--context", metavar="JSON", help="the initial context, a JSON object")
    group.add_argument("--context-file", metavar="PATH", help="a file holding the initial context")
    run.add_argument(
        "--registry", metavar="MODULE:ATTR", help="node registry mapping or FlowRuntime (in-process runs)"
    )
    blueprints(run)
    redis_url(run, None, "run on the workers of this Redis (default: run in-process)")
    queue(run)
    run.add_argument(
        "--timeout", type=float, default=None, metavar="S", help="give up waiting after S seconds"
    )
    common(run)
    run.set_defaults(handler=cmd_run)

    reconcile = sub.add_parser(
        "reconcile",
        help="one reconciliation pass over stalled runs; prints the stats as JSON",
        description="Find runs that made no progress for --stalled-threshold seconds and re-enqueue "
        "their ready nodes (one pass).",
    )
    redis_url(reconcile, default_url, url_help)
    queue(reconcile)
    reconcile.add_argument("--registry", metavar="MODULE:ATTR", help="node registry mapping or FlowRuntime")
    blueprints(reconcile)
    reconcile.add_argument(
        "--stalled-threshold",
        type=float,
        default=300,
        metavar="SECONDS",
        help="a run is stalled after this long without progress (default 300)",
    )
    reconcile.add_argument(
        "--scan-count", type=int, default=100, metavar="N", help="SCAN batch size (default 100)"
    )
    common(reconcile)
    reconcile.set_defaults(handler=cmd_reconcile)

    def durable_keys(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--prefix",
            default=keys.DEFAULT_DURABLE_PREFIX,
            metavar="P",
            help="instance key prefix (default bullflow)",
        )
        p.add_argument(
            "--queue",
            default=keys.DEFAULT_DURABLE_QUEUE,
            metavar="NAME",
            help=f"activation queue (default {keys.DEFAULT_DURABLE_QUEUE})",
        )
        p.add_argument("--queue-prefix", default="bull", metavar="P", help="BullMQ key prefix (default bull)")
        p.add_argument(
            "--reconcile-grace",
            type=float,
            default=60.0,
            metavar="S",
            help="an instance is looked at when this overdue (default 60)",
        )

    durable_worker = sub.add_parser(
        "durable-worker",
        help="run durable step workflows (bullflow.durable) defined in MODULE",
        description="Import MODULE (repeatable) and run activations of its WorkflowEntrypoint subclasses. "
        "SIGTERM/SIGINT stop taking jobs and let running activations finish; a second signal stops at once.",
    )
    durable_worker.add_argument(
        "module", nargs="+", metavar="MODULE", help="module defining workflow classes"
    )
    redis_url(durable_worker, default_url, url_help)
    durable_keys(durable_worker)
    durable_worker.add_argument(
        "--concurrency", type=int, default=10, metavar="N", help="activations at once (default 10)"
    )
    durable_worker.add_argument("--ctx", metavar="MODULE:ATTR", help="the object workflows see as self.ctx")
    durable_worker.add_argument("--env", metavar="MODULE:ATTR", help="the object workflows see as self.env")
    durable_worker.add_argument(
        "--lease-ms", type=int, default=30_000, metavar="MS", help="instance lease (default 30000)"
    )
    durable_worker.add_argument(
        "--inline-threshold",
        type=float,
        default=2.0,
        metavar="S",
        help="timers this close are waited for in the worker; longer ones suspend (default 2)",
    )
    durable_worker.add_argument(
        "--job-lock-ms", type=int, default=30_000, metavar="MS", help="BullMQ job lock (default 30000)"
    )
    durable_worker.add_argument(
        "--stalled-interval-ms",
        type=int,
        default=30_000,
        metavar="MS",
        help="BullMQ stalled check (default 30000)",
    )
    durable_worker.add_argument(
        "--step-limit", type=int, default=1024, metavar="N", help="steps per instance (default 1024)"
    )
    durable_worker.add_argument(
        "--reconcile-interval",
        type=float,
        default=30.0,
        metavar="S",
        help="run the reconciler every S seconds in this process, 0 = never (default 30)",
    )
    durable_worker.add_argument(
        "--shutdown-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="on a stop signal, wait this long (default 30)",
    )
    fleet(durable_worker, "durable worker")
    common(durable_worker, log_default="INFO")
    durable_worker.set_defaults(handler=cmd_durable_worker)

    durable_reconcile = sub.add_parser(
        "durable-reconcile",
        help="one pass of the durable reconciler; prints the stats as JSON",
        description="Re-enqueue durable instances that are overdue and have no activation coming.",
    )
    redis_url(durable_reconcile, default_url, url_help)
    durable_keys(durable_reconcile)
    common(durable_reconcile)
    durable_reconcile.set_defaults(handler=cmd_durable_reconcile)

    status = sub.add_parser("status", help="print the status of a distributed run as JSON")
    status.add_argument("run_id", metavar="RUN_ID")
    redis_url(status, default_url, url_help)
    common(status)
    status.set_defaults(handler=cmd_status)

    serve = sub.add_parser(
        "serve",
        help="serve the HTTP API and the dashboard (/ui); OpenAPI at /docs",
        description="Serve the HTTP API (FastAPI on uvicorn). Settings not given as options come from "
        "the environment: BULLFLOW_REDIS_URL, BULLFLOW_API_TOKENS (comma-separated; preferred over "
        "--token, which other users can see in the process list), BULLFLOW_QUEUE, BULLFLOW_QUEUE_PREFIX, "
        "BULLFLOW_DURABLE_PREFIX, BULLFLOW_DURABLE_QUEUE, BULLFLOW_DURABLE_MODULES, "
        "BULLFLOW_API_MAX_BODY_BYTES, BULLFLOW_API_EXECUTE_TIMEOUT, BULLFLOW_API_HOST, BULLFLOW_API_PORT. "
        "SIGTERM/SIGINT stop it gracefully.",
    )
    serve.add_argument(
        "--host", default=None, metavar="HOST", help="address to listen on (default 127.0.0.1)"
    )
    serve.add_argument("--port", type=int, default=None, metavar="PORT", help="port (default 8000)")
    redis_url(serve, None, f"Redis URL (default ${REDIS_URL_ENV} or {DEFAULT_REDIS_URL})")
    serve.add_argument(
        "--queue",
        action="append",
        default=[],
        metavar="NAME",
        help=f"flow queue; runs start on the first, metrics cover all; repeatable (default {keys.DEFAULT_QUEUE})",
    )
    serve.add_argument(
        "--token", action="append", default=[], metavar="TOKEN", help="an accepted bearer token; repeatable"
    )
    serve.add_argument(
        "--no-auth", action="store_true", help="accept requests without a token (local development only)"
    )
    serve.add_argument(
        "--durable-module",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE so its durable workflow classes can be started; repeatable",
    )
    serve.add_argument("--durable-prefix", default=None, metavar="P", help="durable instance key prefix")
    serve.add_argument("--durable-queue", default=None, metavar="NAME", help="durable activation queue")
    serve.add_argument(
        "--max-body-bytes", type=int, default=None, metavar="N", help="largest request body (default 1 MiB)"
    )
    serve.add_argument(
        "--access-log", action=argparse.BooleanOptionalAction, default=True, help="log every request"
    )
    serve.add_argument(
        "--shutdown-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="on a stop signal, wait this long for open requests and event streams (default 10)",
    )
    common(serve, log_default="INFO")
    serve.set_defaults(handler=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(level=args.log_level, format=LOG_FORMAT, stream=sys.stderr)
    try:
        return handler(args)
    except InputError as err:
        sys.stderr.write(f"bullflow {args.command}: error: {err}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write(f"bullflow {args.command}: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
