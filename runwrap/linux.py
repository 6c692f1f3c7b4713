"""The Linux calls the standard library lacks, through one ctypes handle on libc: prctl(2).

`PR_SET_DUMPABLE` (runwrap's memory out of reach), `PR_SET_CHILD_SUBREAPER` (orphaned descendants
come back to the supervisor, as with tini) and `PR_SET_PDEATHSIG` (a process dies with its parent).
The supervisor's signalfd uses the same handle (`libc`).
"""

from __future__ import annotations

import ctypes
import os

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36

libc = ctypes.CDLL(None, use_errno=True)
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
libc.prctl.restype = ctypes.c_int


def prctl(option: int, arg: int = 0) -> int:
    """prctl(2) with one argument; OSError on failure."""
    result = libc.prctl(option, arg, 0, 0, 0)
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")
    return int(result)
