"""Addresses as users write them: `unix:/path` or `tcp:HOST:PORT` (`tcp:[::1]:7777` for IPv6).

One parser for both sides: the consumer dials what a connection names, the listener prints what
it binds, and `pair` names a connection after the host of the address it was given.
"""

from __future__ import annotations

import _socket

from runwrap.errors import ConfigError, ConnectionFailed
from runwrap.wire import framing

Target = tuple[str, str | tuple[str, int]]


class Socket(_socket.socket):
    """The C socket that `socket.socket` wraps, usable in `with`. The wrapper module builds enums of
    every socket constant at import (~2 ms of each `runwrap PROFILE -- cmd`) for features a
    consumer's connection never uses (makefile, sendfile, enum-typed families)."""

    __slots__ = ()

    def __enter__(self) -> Socket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def parse_address(address: str) -> tuple[str, str | tuple[str, int]]:
    """("unix", path) or ("tcp", (host, port)); a bare path means unix. ConfigError otherwise."""
    if address.startswith("tcp:"):
        host, port = split_host_port(address[4:], what=address)
        return "tcp", (host, port)
    path = address[5:] if address.startswith("unix:") else address
    if not path:
        raise ConfigError(f"not an address: {address!r} (use tcp:HOST:PORT or unix:PATH)")
    return "unix", path


def parse_host_port(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """(host, port) from `HOST:PORT`, `[IPv6]:PORT` or `:PORT` (the default host); port 0 lets the
    kernel pick one. ValueError saying what is accepted otherwise (`listen --tcp` as people write it)."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isascii() or not port.isdigit():
        raise ValueError(f"not HOST:PORT: {text!r} (use e.g. 127.0.0.1:7777 or [::1]:7777)")
    if int(port) > 65535:
        raise ValueError(f"not a port: {port} (use 0 to 65535)")
    if host.startswith("["):
        if not host.endswith("]") or len(host) < 3:
            raise ValueError(f"not HOST:PORT: {text!r} (an IPv6 address goes in brackets: [::1]:7777)")
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"not HOST:PORT: {text!r} (an IPv6 address goes in brackets: [{host}]:{port})")
    return host or default_host, int(port)


def split_host_port(text: str, *, what: str | None = None) -> tuple[str, int]:
    """The (host, port) of a connection's `tcp:` address; ConfigError (a bad file entry) otherwise."""
    try:
        return parse_host_port(text)
    except ValueError as exc:
        raise ConfigError(f"not an address: {what or text!r}: {exc}") from None


def tcp_address(host: str, port: int) -> str:
    """The address a user types for a TCP endpoint: IPv6 literals go in brackets."""
    return f"tcp:[{host}]:{port}" if ":" in host else f"tcp:{host}:{port}"


def host_of(address: str) -> str:
    """The host an address names, or "" for a Unix socket (what `pair` names a connection after)."""
    kind, target = parse_address(address)
    return target[0] if kind == "tcp" and isinstance(target, tuple) else ""


def connect(address: str, timeout: float, keepalive: tuple[int, int, int] | None = None) -> Socket:
    """A connected, blocking socket with `timeout`; ConnectionFailed with the reason otherwise.

    TCP gets TCP_NODELAY (requests are small and answered at once) and, with `keepalive`
    (idle, interval, count), probes that end it when the other host or the link goes away.
    """
    kind, target = parse_address(address)
    if kind == "unix":
        sock = Socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    else:
        assert isinstance(target, tuple)
        sock = Socket(_socket.AF_INET6 if ":" in target[0] else _socket.AF_INET, _socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(target)
    except OSError as exc:
        sock.close()
        why = exc.strerror or type(exc).__name__
        raise ConnectionFailed(f"cannot reach the listener at {address}: {why}; is `runwrap listen` running?") from None
    if kind == "tcp":
        sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        if keepalive is not None:
            framing.set_keepalive(sock, *keepalive)
    return sock
