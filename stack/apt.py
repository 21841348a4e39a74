"""Debian packages the project needs (``redis-server``; ``wrk`` for the HTTP benchmark), installed with apt-get
as root on first use."""

from __future__ import annotations

import os
import shutil
import subprocess

from stack.errors import StackError, log
from stack.paths import state_dir


def find_binary(binary: str) -> str | None:
    """On PATH, or in the system folders a non-login PATH may lack."""
    return shutil.which(binary) or next(
        (p for p in (f"/usr/bin/{binary}", f"/usr/sbin/{binary}") if os.access(p, os.X_OK)), None
    )


def apt_install(package: str, binary: str) -> str:
    """Install ``package`` (one time; apt's output goes to ``.stack/apt.log``) and return the path of ``binary``."""
    if os.geteuid() != 0:
        raise StackError(f"{binary} is missing and we are not root: run `sudo apt-get install -y {package}`")
    if not shutil.which("apt-get"):
        raise StackError(f"{binary} is missing and apt-get is not available: install {package} by hand")
    log(f"{binary} missing: installing {package} with apt-get (one time)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    lock = ["-o", "DPkg::Lock::Timeout=300"]
    logf = state_dir() / "apt.log"
    logf.parent.mkdir(parents=True, exist_ok=True)
    with open(logf, "ab") as out:
        for cmd in (
            ["apt-get", *lock, "update"],
            ["apt-get", *lock, "install", "-y", "--no-install-recommends", package],
        ):
            rc = subprocess.call(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            if rc != 0:
                raise StackError(f"`{' '.join(cmd)}` failed with exit code {rc} (see {logf})")
    path = find_binary(binary)
    if not path:
        raise StackError(f"apt-get installed {package} but {binary} is not on PATH")
    return path
