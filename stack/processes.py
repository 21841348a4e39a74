"""The processes stack starts: spawn, pid files, liveness, stop by recorded pid (never by name)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from stack.errors import log
from stack.paths import addr_file, pid_file

STOP_TIMEOUT = 20.0


def read_pid(service: str) -> int | None:
    try:
        text = pid_file(service).read_text().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def _proc_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def pid_alive(pid: int) -> bool:
    # reap our own child if it exited (when started from this very process)
    with contextlib.suppress(ChildProcessError, OSError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return _proc_state(pid) not in (None, "Z", "X")


def pid_cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


CMDLINE_MARKERS = {"kafka": "kafka.Kafka", "redis": "redis-server"}


def our_pid(service: str) -> int | None:
    """Recorded pid when that process is alive and still looks like what we started; else
    remove the stale pid file and return None."""
    pid = read_pid(service)
    if pid is None:
        if pid_file(service).exists():
            pid_file(service).unlink(missing_ok=True)
        return None
    marker = CMDLINE_MARKERS[service]
    if pid_alive(pid) and any(marker in a for a in pid_cmdline(pid)):
        return pid
    log(f"removing stale {pid_file(service).name} (pid {pid} is gone)")
    pid_file(service).unlink(missing_ok=True)
    addr_file(service).unlink(missing_ok=True)
    return None


def recorded_addr(service: str) -> str | None:
    try:
        return addr_file(service).read_text().strip() or None
    except OSError:
        return None


def our_pid_at(service: str, addr: str) -> tuple[int | None, str | None]:
    """(pid, None) when our live process serves ``addr``; (None, other_addr) when ours serves
    another address; (None, None) when we run nothing."""
    pid = our_pid(service)
    if pid is None:
        return None, None
    rec = recorded_addr(service)
    if rec is None or rec == addr:
        return pid, None
    return None, rec


def record_started(service: str, pid: int, addr: str) -> None:
    pid_file(service).write_text(f"{pid}\n")
    addr_file(service).write_text(addr + "\n")


_DETACHED: list[subprocess.Popen] = []
"""Services outlive the process that started them (a test session starting the stack on demand): their Popen
objects are kept for the process's lifetime, so none is collected while its service runs (a ResourceWarning,
which pytest turns into an error)."""


def spawn(cmd: list[str], log_path: Path, cwd: Path) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if log_path.exists() and log_path.stat().st_size > 0:
        os.replace(log_path, log_path.with_name(log_path.name + ".1"))
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=str(cwd),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    _DETACHED.append(proc)
    return proc


def tail(path: Path, n: int = 40) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return "\n".join(lines[-n:])


def stop_pid(service: str, timeout: float = STOP_TIMEOUT) -> bool:
    """SIGTERM the recorded pid, wait, then SIGKILL. Returns True when something was stopped."""
    pid = our_pid(service)
    if pid is None:
        pid_file(service).unlink(missing_ok=True)
        addr_file(service).unlink(missing_ok=True)
        return False
    log(f"stopping {service} (pid {pid})")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.2)
    if pid_alive(pid):
        log(f"{service} (pid {pid}) ignored SIGTERM for {timeout:.0f}s, sending SIGKILL")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and pid_alive(pid):
            time.sleep(0.1)
    pid_file(service).unlink(missing_ok=True)
    addr_file(service).unlink(missing_ok=True)
    return True


def wait_until(check: Callable[[], object], timeout: float, pid: int | None = None, interval: float = 0.25) -> bool:
    """Poll ``check`` until it is truthy (True), ``timeout`` passes or process ``pid`` exits (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if pid is not None and not pid_alive(pid):
            return False
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
