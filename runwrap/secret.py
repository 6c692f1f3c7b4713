"""The one type that holds a secret value on runwrap's side.

A `Secret` keeps its bytes in a `bytearray` that `wipe()` overwrites with zeros. It never prints
itself: `repr`, `str`, f-strings, logging and tracebacks show `Secret(***)`. `reveal()` is the one
explicit way to get the value, and it returns a copy that Python cannot wipe, so callers use
`reveal_bytes()`/`buffer` where they can. `wipe_bytes` zeroes an immutable `bytes` object that
runwrap created itself and holds the only reference to (a decrypted frame, an encoding of a
secret) — CPython keeps the payload inline, so this reaches the real memory.
"""

from __future__ import annotations

import sys

from runwrap.linux import address, memset

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

_BYTES_HEADER = sys.getsizeof(b"") - 1  # offset of ob_sval inside a PyBytesObject


def wipe_bytes(data: bytes | bytearray | None) -> None:
    """Overwrite the payload of `data` with zeros, in place.

    Only for objects runwrap created and owns: zero- and one-byte `bytes` are shared singletons in
    CPython and are left alone (they can never hold a maskable secret anyway).
    """
    if data is None:
        return
    if isinstance(data, bytearray):
        if data:  # memset in place from its first byte: no zero buffer, no ctypes array type per length
            memset(address(data), 0, len(data))
        return
    if isinstance(data, bytes) and len(data) > 1:
        memset(id(data) + _BYTES_HEADER, 0, len(data))


class Secret:
    """A secret value that can be wiped and never shows itself."""

    __slots__ = ("_buf",)

    def __init__(self, value: bytes | bytearray | str | memoryview = b"") -> None:
        if isinstance(value, str):
            value = value.encode("utf-8")
        self._buf = bytearray(value)

    @classmethod
    def from_buffer(cls, buf: bytearray) -> Secret:
        """Take ownership of `buf` without copying it."""
        secret = cls()
        secret._buf = buf
        return secret

    @property
    def buffer(self) -> bytearray:
        """The live buffer; do not keep references that outlive the secret."""
        return self._buf

    def reveal(self) -> str:
        """The value as text. The returned `str` is a copy Python cannot wipe."""
        return self._buf.decode("utf-8", "surrogateescape")

    def reveal_bytes(self) -> bytes:
        """The value as bytes. The copy is the caller's to wipe (`wipe_bytes`)."""
        return bytes(self._buf)

    def wipe(self) -> None:
        wipe_bytes(self._buf)
        self._buf.clear()

    def __len__(self) -> int:
        return len(self._buf)

    def __bool__(self) -> bool:
        return bool(self._buf)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            return self._buf == other._buf
        return NotImplemented

    def __hash__(self) -> int:
        raise TypeError("Secret is not hashable")

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return "Secret(***)"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled")

    def __enter__(self) -> Secret:
        return self

    def __exit__(self, *exc: object) -> None:
        self.wipe()
