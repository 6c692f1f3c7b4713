"""runwrap.linux calls libc through `_ctypes`, ctypes' private C half: these fail loudly when a Python
changes what it relies on (scripts/test-pythons runs them on every supported version).

They check that ctypes is still built from the same pieces (so runwrap's copy means what ctypes'
CDLL means), that the types are as wide as C's (prctl's unsigned longs, memset's size_t, pointers)
and that errno comes back, by real calls whose result depends on it.
"""

from __future__ import annotations

import _ctypes
import ctypes
import errno
import signal
import struct
import subprocess
import sys

import pytest

from runwrap import linux
from runwrap.secret import wipe_bytes
from runwrap.supervise.memfind import Finder


def test_ctypes_is_still_made_of_what_runwrap_linux_uses() -> None:
    assert ctypes._SimpleCData is _ctypes._SimpleCData
    assert ctypes._CFuncPtr is _ctypes.CFuncPtr
    assert ctypes._dlopen is _ctypes.dlopen
    assert ctypes.get_errno is _ctypes.get_errno
    assert ctypes.addressof is _ctypes.addressof
    # CDLL(None, use_errno=True) makes its functions with exactly these flags and restype.
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc._FuncPtr._flags_ == linux._Function._flags_
    assert libc._FuncPtr._restype_ is ctypes.c_int


@pytest.mark.parametrize(("ours", "theirs", "code"), [
    (linux.Int, ctypes.c_int, "i"), (linux.ULong, ctypes.c_ulong, "L"), (linux.ULong, ctypes.c_size_t, "N"),
    (linux.VoidP, ctypes.c_void_p, "P"), (linux._Char, ctypes.c_char, "c"),
])
def test_the_types_are_ctypes_types(ours: type, theirs: type, code: str) -> None:
    assert ours._type_ == theirs._type_  # type: ignore[attr-defined]
    assert _ctypes.sizeof(ours) == ctypes.sizeof(theirs) == struct.calcsize(code)


def test_unsigned_longs_and_pointers_keep_all_their_bits() -> None:
    assert linux.ULong(2**64 - 1).value == 2**64 - 1
    assert linux.VoidP(2**63 + 5).value == 2**63 + 5


def run_alone(code: str) -> str:
    """Run `code` in a Python of its own (prctl changes the process), with runwrap importable."""
    result = subprocess.run([sys.executable, "-c", f"from runwrap import linux\n{code}"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_prctl_sets_and_reads_back() -> None:
    out = run_alone("for value in (0, 1):\n"
                    "    linux.prctl(linux.PR_SET_DUMPABLE, value)\n"
                    "    print(linux.prctl(linux.PR_GET_DUMPABLE))")
    assert out.split() == ["0", "1"]


def test_prctl_passes_a_whole_unsigned_long() -> None:
    # Cut to 32 bits, 2**32 + SIGKILL would be SIGKILL, which the kernel accepts; whole, it is no signal.
    out = run_alone(f"try:\n    linux.prctl(linux.PR_SET_PDEATHSIG, {2**32 + signal.SIGKILL})\n"
                    "except OSError as e:\n    print(e.errno, e)\nelse:\n    print('accepted')")
    assert out.split(" ", 1) == [str(errno.EINVAL), f"[Errno {errno.EINVAL}] prctl(1): Invalid argument\n"]


def test_a_failed_call_reports_its_errno() -> None:
    with pytest.raises(OSError) as failed:
        linux.prctl(-1)
    assert failed.value.errno == errno.EINVAL


@pytest.mark.parametrize("size", [2, 5, 64, 70_001])
def test_memset_zeroes_exactly_the_bytes_asked(size: int) -> None:
    data = bytes(range(256)) * (size // 256 + 1)
    value = data[:size] + b""  # a bytes object of our own
    neighbour = bytearray(b"\xa5" * (size + 2))
    where = linux.address(neighbour)
    linux.memset(where + 1, 0, size)
    assert neighbour == b"\xa5" + bytes(size) + b"\xa5"
    assert where > 2**32  # a 64-bit address, so a pointer cut to 32 bits would have missed the buffer
    wipe_bytes(value)
    assert value == bytes(size)


def test_memmem_is_there_and_finds_in_bytes_and_bytearrays() -> None:
    needle, absent = bytearray(b"needle-of-twenty-chr"), bytearray(b"absent-absent")
    for buffer in (b"x" * 1000 + bytes(needle) + b"y", bytearray(b"x" * 1000 + needle + b"y")):
        finder = Finder(buffer, len(buffer))
        assert finder._base, "libc's memmem was not found"
        spans: list[tuple[int, int]] = []
        finder.find_all(needle, linux.address(needle), spans)
        finder.find_all(absent, linux.address(absent), spans)
        finder.close()
        assert spans == [(1000, 1020)]


def _in_a_child(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_rlimits_read_and_set_as_the_resource_module_has_them() -> None:
    """In a child: setrlimit changes this process's limits (the same numbers as resource's, -1 there
    being RLIM_INFINITY here)."""
    out = _in_a_child(
        "import resource\n"
        "from runwrap import linux\n"
        "assert linux.RLIMIT_CORE == resource.RLIMIT_CORE\n"
        "ours = linux.getrlimit(linux.RLIMIT_CORE)\n"
        "theirs = resource.getrlimit(resource.RLIMIT_CORE)\n"
        "assert tuple(linux.RLIM_INFINITY if v == resource.RLIM_INFINITY else v for v in theirs) == ours\n"
        "linux.setrlimit(linux.RLIMIT_CORE, (0, ours[1]))\n"
        "assert resource.getrlimit(resource.RLIMIT_CORE)[0] == 0\n"
        "linux.setrlimit(linux.RLIMIT_CORE, (4096, ours[1]))\n"
        "assert resource.getrlimit(resource.RLIMIT_CORE)[0] == 4096\n"
        "linux.setrlimit(linux.RLIMIT_CORE, ours)\n"
        "assert linux.getrlimit(linux.RLIMIT_CORE) == ours\n"
        "print('ok')\n")
    assert out == "ok"


def test_a_refused_setrlimit_is_an_oserror_with_its_errno() -> None:
    out = _in_a_child(
        "from runwrap import linux\n"
        "soft, hard = linux.getrlimit(linux.RLIMIT_CORE)\n"
        "try:\n"
        "    linux.setrlimit(linux.RLIMIT_CORE, (2, 1))\n"  # soft above hard: EINVAL
        "except OSError as exc:\n"
        "    print(exc.errno)\n")
    assert out == str(errno.EINVAL)
