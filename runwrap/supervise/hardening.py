"""Keep runwrap's own memory out of reach: not dumpable, no core file.

`harden()` runs at the start of the exec path, before any secret arrives. A non-dumpable process
has its `/proc/PID/{mem,environ,maps}` owned by root and refuses `ptrace` from other processes of
the same uid, so an agent running as the same user cannot read the secrets runwrap holds.
`RLIMIT_CORE` 0 means a crash writes no core file with them in it.

Both settings are runwrap's, not the child's: the kernel makes the child dumpable again when it
execs, and the forked child (`child`) restores the core limit runwrap was started with
(`original_core_limit`), so the command runs as it would without runwrap.
"""

from __future__ import annotations

from runwrap.linux import PR_SET_DUMPABLE, RLIMIT_CORE, getrlimit, prctl, setrlimit

# The core limit runwrap was started with, before harden() lowered it; None until harden() ran.
original_core_limit: tuple[int, int] | None = None


def harden() -> None:
    """Make this process non-dumpable and unable to write a core file."""
    global original_core_limit
    prctl(PR_SET_DUMPABLE, 0)
    if original_core_limit is None:
        original_core_limit = getrlimit(RLIMIT_CORE)
    # Only the soft limit: lowering the hard one too would stop the child from getting its limit back.
    setrlimit(RLIMIT_CORE, (0, original_core_limit[1]))
