"""wipe_bytes zeroes a bytearray where it lives, whatever its length (one memset from its first byte)."""

from __future__ import annotations

import ctypes

import pytest

from runwrap.secret import Secret, wipe_bytes


@pytest.mark.parametrize("size", [1, 2, 31, 4096, 100_003])
def test_a_bytearray_is_zeroed_in_place(size: int) -> None:
    data = bytearray(b"\xa5" * size)
    address = ctypes.addressof(ctypes.c_char.from_buffer(data))
    wipe_bytes(data)
    assert ctypes.addressof(ctypes.c_char.from_buffer(data)) == address and len(data) == size
    assert ctypes.string_at(address, size) == bytes(size)


def test_a_secret_is_zeroed_before_it_is_emptied() -> None:
    secret = Secret(b"hunter2-but-longer")
    buffer = secret.buffer
    address, size = ctypes.addressof(ctypes.c_char.from_buffer(buffer)), len(buffer)
    view = (ctypes.c_char * size).from_address(address)  # reads the memory the buffer used
    wipe_bytes(buffer)
    assert view.raw == bytes(size)
    secret.wipe()
    assert len(secret) == 0
