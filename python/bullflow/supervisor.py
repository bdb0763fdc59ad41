"""Supervising worker processes: ``bullflow worker --processes N`` (and ``durable-worker``) runs N
copies of the single-process worker command under a :class:`Supervisor`.

* A child that exits while the supervisor is not stopping is started again: at once when it had
  run for ``min_uptime`` seconds, else after a backoff that doubles with every early crash in a
  row (``backoff`` .. ``max_backoff``). After ``max_early_crashes`` early crashes in a row of one
  child the supervisor gives up: it stops the other children (as on SIGTERM) and exits 1.
* The first SIGTERM or SIGINT is forwarded to every child, which stops taking jobs and finishes
  the ones it runs (drains); no child is started again. A second signal is forwarded too (the
  children stop at once). The supervisor exits when every child has: 0 when each exited 0.
* Children run in their own session, so a terminal's Ctrl-C reaches them once, through the
  supervisor; on Linux they get SIGTERM if the supervisor dies without forwarding anything.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import FrameType

from .exceptions import SettingsError

__all__ = ["Supervisor", "SupervisorSettings", "redact_argv"]

logger = logging.getLogger(__name__)

_FORWARDED = (signal.SIGTERM, signal.SIGINT)
_PR_SET_PDEATHSIG = 1
_URL_PASSWORD = re.compile(r"(\w+://[^:/@\s]*:)[^@\s]*@")


def redact_argv(argv: Sequence[str]) -> str:
    """A command line for the log: the password of any URL in it replaced by ``***``."""
    return " ".join(_URL_PASSWORD.sub(r"\1***@", arg) for arg in argv)


@dataclass(frozen=True, slots=True)
class SupervisorSettings:
    """How a :class:`Supervisor` restarts children.

    * ``min_uptime`` -- seconds a child must run for its exit to count as a crash of a worker
      that was serving (restarted at once) rather than an early crash (restarted after backoff);
    * ``backoff`` / ``max_backoff`` -- the delay before restarting after the first early crash in
      a row, doubled after each further one, at most ``max_backoff``;
    * ``max_early_crashes`` -- early crashes in a row of one child after which the supervisor
      gives up;
    * ``poll_interval`` -- seconds between two looks at the children.
    """

    min_uptime: float = 5.0
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_early_crashes: int = 5
    poll_interval: float = 0.1

    def __post_init__(self) -> None:
        if self.max_early_crashes < 1:
            raise SettingsError(f"max_early_crashes must be at least 1, got {self.max_early_crashes}")
        for name in ("min_uptime", "backoff", "max_backoff", "poll_interval"):
            if getattr(self, name) < 0:
                raise SettingsError(f"{name} must not be negative, got {getattr(self, name)}")


class _Child:
    __slots__ = ("early_crashes", "exit_code", "pid", "proc", "restart_at", "slot", "started")

    def __init__(self, slot: int) -> None:
        self.slot = slot
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid = 0
        self.started = 0.0
        self.early_crashes = 0
        self.restart_at: float | None = 0.0
        self.exit_code: int | None = None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to send this process SIGTERM when its parent dies."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


class Supervisor:
    """Runs ``processes`` copies of ``command`` (an argv list) until stopped by a signal; see the
    module docstring. :meth:`run` blocks (call it from the main thread: it installs SIGTERM and
    SIGINT handlers) and returns the exit code."""

    def __init__(
        self,
        command: Sequence[str],
        processes: int,
        *,
        settings: SupervisorSettings | None = None,
        env: Mapping[str, str] | None = None,
        name: str = "worker",
    ) -> None:
        if processes < 1:
            raise SettingsError(f"processes must be at least 1, got {processes}")
        if not command:
            raise SettingsError("the command of the supervised processes is empty")
        self.command = list(command)
        self.processes = processes
        self.settings = settings or SupervisorSettings()
        self.env = dict(env) if env is not None else None
        self.name = name
        self.children = [_Child(slot) for slot in range(1, processes + 1)]
        self.restarts = 0
        self.gave_up = False
        self._signals: list[int] = []
        self._forwarded = 0
        self._stop_signals_sent = 0

    # ------------------------------------------------------------------------------ public
    def pids(self) -> list[int]:
        """The pids of the children that run now."""
        return [c.proc.pid for c in self.children if c.proc is not None and c.proc.poll() is None]

    def stop(self, signum: int = signal.SIGTERM) -> None:
        """What receiving ``signum`` does (the signal handler calls this)."""
        self._signals.append(signum)

    def run(self) -> int:
        previous = {signum: signal.signal(signum, self._on_signal) for signum in _FORWARDED}
        try:
            return self._loop()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    # ------------------------------------------------------------------------------ internals
    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals.append(signum)

    @property
    def stopping(self) -> bool:
        return bool(self._signals) or self.gave_up

    def _loop(self) -> int:
        logger.info(
            "supervisor (pid %d): running %d %s processes: %s",
            os.getpid(),
            self.processes,
            self.name,
            redact_argv(self.command),
        )
        while True:
            self._forward_signals()
            now = time.monotonic()
            for child in self.children:
                self._watch(child, now)
            if self.stopping and all(c.proc is None for c in self.children):
                break
            time.sleep(self.settings.poll_interval)
        failed = [c for c in self.children if c.exit_code not in (0, None)]
        if self.gave_up:
            return 1
        if failed:
            logger.warning(
                "supervisor: %s exited with %s",
                ", ".join(f"process {c.slot}" for c in failed),
                ", ".join(str(c.exit_code) for c in failed),
            )
            return 1
        logger.info("supervisor: all %d %s processes stopped", self.processes, self.name)
        return 0

    def _forward_signals(self) -> None:
        while self._forwarded < len(self._signals):
            signum = self._signals[self._forwarded]
            self._forwarded += 1
            name = signal.Signals(signum).name
            if self._stop_signals_sent == 0:
                logger.info(
                    "supervisor: %s: stopping %d processes (they drain; again to stop at once)",
                    name,
                    len(self.pids()),
                )
            else:
                logger.warning("supervisor: %s (again): the processes stop at once", name)
            self._send(signum)

    def _send(self, signum: int) -> None:
        """Send ``signum`` to every child that runs (the first one drains them, a second stops them)."""
        self._stop_signals_sent += 1
        for child in self.children:
            if child.proc is not None and child.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.proc.send_signal(signum)

    def _watch(self, child: _Child, now: float) -> None:
        proc = child.proc
        if proc is not None:
            code = proc.poll()
            if code is None:
                return
            child.proc = None
            child.exit_code = code
            self._exited(child, code, now)
        if (
            child.proc is None
            and not self.stopping
            and child.restart_at is not None
            and now >= child.restart_at
        ):
            self._spawn(child, now)

    def _exited(self, child: _Child, code: int, now: float) -> None:
        uptime = now - child.started
        what = f"exit code {code}" if code >= 0 else f"signal {_signal_name(-code)}"
        if self.stopping:
            log = logger.info if code == 0 else logger.warning
            log("supervisor: %s process %d (pid %d) stopped: %s", self.name, child.slot, child.pid, what)
            child.restart_at = None
            return
        if uptime >= self.settings.min_uptime:
            child.early_crashes = 0
            child.restart_at = now
            logger.warning(
                "supervisor: %s process %d (pid %d) exited (%s) after %.1f s; starting it again",
                self.name,
                child.slot,
                child.pid,
                what,
                uptime,
            )
            return
        child.early_crashes += 1
        if child.early_crashes >= self.settings.max_early_crashes:
            logger.error(
                "supervisor: %s process %d crashed %d times in a row within %.0f s of starting (last: %s); "
                "giving up and stopping the others",
                self.name,
                child.slot,
                child.early_crashes,
                self.settings.min_uptime,
                what,
            )
            child.restart_at = None
            self.gave_up = True
            self._send(signal.SIGTERM)
            return
        delay = min(self.settings.max_backoff, self.settings.backoff * 2 ** (child.early_crashes - 1))
        child.restart_at = now + delay
        logger.warning(
            "supervisor: %s process %d (pid %d) exited (%s) %.1f s after starting; starting it again in %.1f s",
            self.name,
            child.slot,
            child.pid,
            what,
            uptime,
            delay,
        )

    def _spawn(self, child: _Child, now: float) -> None:
        linux = sys.platform.startswith("linux")
        child.proc = subprocess.Popen(
            self.command,
            env=self.env,
            start_new_session=True,
            preexec_fn=_die_with_parent if linux else None,
        )
        child.pid = child.proc.pid
        if child.started:
            self.restarts += 1
        child.started = now
        child.exit_code = None
        logger.info("supervisor: started %s process %d (pid %d)", self.name, child.slot, child.proc.pid)


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)
