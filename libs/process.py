"""Process-level behaviour shared by every MedServe process."""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def exit_with_parent(signum: int = signal.SIGTERM) -> None:
    """Ask the kernel to send `signum` when the parent process dies (Linux; elsewhere a no-op).

    A supervised process must not outlive its supervisor: if supervisord (or `make run`) is killed
    outright, every service gets SIGTERM and drains, instead of living on as an orphan holding its port."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
    if os.getppid() == 1:  # the parent died before the request took effect
        os.kill(os.getpid(), signum)
