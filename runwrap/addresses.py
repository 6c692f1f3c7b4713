"""Addresses as users write them: `HOST:PORT` for `listen --tcp`, with `[::1]:PORT` for IPv6."""

from __future__ import annotations


def parse_host_port(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """(host, port) from `HOST:PORT`, `[IPv6]:PORT` or `:PORT` (the default host); port 0 lets the
    kernel pick one. ValueError saying what is accepted otherwise."""
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
