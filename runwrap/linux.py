"""The Linux calls the standard library lacks, through one handle on libc: prctl(2), and the C functions
the supervisor and the wiping of secrets use (signalfd, sigaddset, memmem, memset); and getrlimit and
setrlimit, which the `resource` module has too but costs ~0.3 ms of every launch to import.

`PR_SET_DUMPABLE` (runwrap's memory out of reach), `PR_SET_CHILD_SUBREAPER` (orphaned descendants
come back to the supervisor, as with tini) and `PR_SET_PDEATHSIG` (a process dies with its parent).

Straight through `_ctypes`, the C half of ctypes: `ctypes/__init__.py` only dresses these same
objects up, and importing it (with `ctypes._endian`) costs ~1.5 ms of every launch. What is used here
is what ctypes' own CDLL is built from, unchanged since Python 3.3: `dlopen`, `CFuncPtr` with its
`_flags_`/`_restype_`, `_SimpleCData` with a struct-module type code, `addressof`, `get_errno`.
tests/unit/test_linux.py fails loudly on every supported Python if any of it changes.
Only addresses and integers cross into C, typed as C declares them (so no argument is cut to an int).
"""

from __future__ import annotations

import _ctypes
import os
import sys

TYPE_CHECKING = False

PR_SET_PDEATHSIG = 1
PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
RLIMIT_CORE = 4  # the same on every Linux ABI (asm-generic and the others alike)


if TYPE_CHECKING:  # to mypy, ctypes' own: these are what ctypes defines them as
    from ctypes import c_char, c_int, c_ulong, c_void_p

    Int = c_int
    ULong = c_ulong
    VoidP = c_void_p
    _Char = c_char
else:  # c_int, c_ulong (on Linux also size_t), c_void_p and c_char, by their struct-module codes
    class Int(_ctypes._SimpleCData):
        _type_ = "i"

    class ULong(_ctypes._SimpleCData):
        _type_ = "L"

    class VoidP(_ctypes._SimpleCData):
        _type_ = "P"

    class _Char(_ctypes._SimpleCData):
        _type_ = "c"


class _Libc:
    """What a function is looked up in, as in ctypes' CDLL(None): the process's own symbols."""

    _handle = _ctypes.dlopen(None, 0)  # type: ignore[arg-type]  # None: dlopen(NULL), as CDLL(None) does


class _Function(_ctypes.CFuncPtr):
    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO  # CDLL(None, use_errno=True)
    _restype_ = Int


def function(name: str, restype: type, *argtypes: type) -> _ctypes.CFuncPtr:
    """libc's `name`, called with `argtypes`; AttributeError if the C library has none."""
    func = _Function((name, _Libc))  # type: ignore[arg-type]  # CFuncPtr reads only the _handle
    func.restype = restype
    func.argtypes = argtypes
    return func


def address(buf: bytearray) -> int:
    """Where a non-empty bytearray's bytes are; valid while it is neither resized nor freed."""
    return int(_ctypes.addressof(_Char.from_buffer(buf)))


def pin(buf: bytearray) -> object:
    """An export of a non-empty bytearray: while it is kept, the bytearray cannot be resized."""
    return _Char.from_buffer(buf)


def errno() -> int:
    """The errno of the last call through a `function`."""
    return int(_ctypes.get_errno())


# prctl(2) is variadic in glibc (int, ...); on Linux's ABIs unsigned longs go as fixed arguments do.
_prctl = function("prctl", Int, Int, ULong, ULong, ULong, ULong)
memset = function("memset", VoidP, VoidP, Int, ULong)


def prctl(option: int, arg: int = 0) -> int:
    """prctl(2) with one argument; OSError on failure."""
    result = _prctl(option, arg, 0, 0, 0)
    if result < 0:
        err = errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")
    return int(result)


_getrlimit = function("getrlimit", Int, Int, VoidP)
_setrlimit = function("setrlimit", Int, Int, VoidP)
_RLIM_BYTES = _ctypes.sizeof(ULong)  # rlim_t is an unsigned long on Linux
RLIM_INFINITY = (1 << (8 * _RLIM_BYTES)) - 1  # as C has it (the resource module says -1)


def getrlimit(resource: int) -> tuple[int, int]:
    """getrlimit(2): the soft and hard limit, RLIM_INFINITY for none; OSError on failure."""
    limits = bytearray(2 * _RLIM_BYTES)
    if _getrlimit(resource, address(limits)) < 0:
        err = errno()
        raise OSError(err, f"getrlimit({resource}): {os.strerror(err)}")
    return (int.from_bytes(limits[:_RLIM_BYTES], sys.byteorder), int.from_bytes(limits[_RLIM_BYTES:], sys.byteorder))


def setrlimit(resource: int, limits: tuple[int, int]) -> None:
    """setrlimit(2) with a (soft, hard) pair as getrlimit gives it; OSError on failure."""
    buf = bytearray(limits[0].to_bytes(_RLIM_BYTES, sys.byteorder) + limits[1].to_bytes(_RLIM_BYTES, sys.byteorder))
    if _setrlimit(resource, address(buf)) < 0:
        err = errno()
        raise OSError(err, f"setrlimit({resource}): {os.strerror(err)}")
