"""The pty's echo of what the user typed is not held back by the masker (streams.Stream).

A real pipe stands in for the pty master: what the test writes into it is what the stream reads.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from runwrap.supervise.mask import Masker
from runwrap.supervise.streams import Stream

SECRET = b"correct-horse-battery-staple"


@pytest.fixture
def pty_stream() -> Iterator[tuple[Stream, int]]:
    read, write = os.pipe()
    null = os.open(os.devnull, os.O_WRONLY)
    stream = Stream(read, null, Masker([SECRET]))
    stream.echo = bytearray()
    try:
        yield stream, write
    finally:
        stream.close()
        os.close(write)
        os.close(null)


def test_a_typed_key_that_may_begin_a_value_is_echoed_at_once(pty_stream: tuple[Stream, int]) -> None:
    stream, child = pty_stream
    stream.expect_echo(b"c")
    os.write(child, b"c")
    stream.read()
    assert stream.out == b"c"
    assert stream.echo == bytearray()  # what was typed is forgotten (and zeroed) at each read


def test_the_childs_own_output_still_waits(pty_stream: tuple[Stream, int]) -> None:
    stream, child = pty_stream
    os.write(child, b"> co")  # nothing typed: the child's output, and it may begin the value
    stream.read()
    assert stream.out == b"> "
    # The user types 'r', the echo comes: the held "co" came before it, from the child, so it waits.
    stream.expect_echo(b"r")
    os.write(child, b"r")
    stream.read()
    assert stream.out == b"> "
    # A read that holds more than the echo (the child wrote too) releases nothing either.
    os.write(child, b"rect-horse-battery-staple.\n")
    stream.read()
    assert stream.out == b"> ***.\n"


def test_typed_bytes_and_child_output_in_one_read_are_not_released(pty_stream: tuple[Stream, int]) -> None:
    stream, child = pty_stream
    stream.expect_echo(b"x")
    os.write(child, b"x" + SECRET[:4])  # the echo and the start of the value, read together
    stream.read()
    assert stream.out == b"x"
    os.write(child, SECRET[4:])
    stream.read()
    assert stream.out == b"x***"


def test_pipes_never_release(pty_stream: tuple[Stream, int]) -> None:
    stream, child = pty_stream
    stream.echo = None
    stream.expect_echo(b"c")
    os.write(child, b"c")
    stream.read()
    assert stream.out == b""
