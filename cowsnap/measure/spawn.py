"""Helpers for the processes cowsnap starts."""

from __future__ import annotations

import ctypes
import signal

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """A subprocess's preexec_fn: the kernel kills the process when the one
    that started it dies, so a killed job leaves nothing it started running."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
