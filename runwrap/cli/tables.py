"""Tables as the CLI prints them (columns padded to the widest cell, one row a line), and the two listings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from runwrap.errors import RunwrapError

if TYPE_CHECKING:
    from runwrap.paths import Layout


def echo_table(header: list[str], rows: list[list[str]], *, empty: str) -> None:
    if not rows:
        typer.echo(empty)
        return
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        typer.echo("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def show_connections(lay: Layout, *, as_json: bool) -> None:
    """`connections list`: the paired listeners."""
    from runwrap.consumer.connections import Connections
    from runwrap.wire.identity import fingerprint

    conns = Connections(lay.connections)
    listed = list(conns.by_name.values())
    if as_json:
        typer.echo(json.dumps([{"name": c.name, "address": c.address, "fingerprint": fingerprint(c.public_bytes),
                                "paired_at": c.paired_at, "default": c.name == conns.default} for c in listed]))
        return
    echo_table(["NAME", "ADDRESS", "LISTENER KEY", "PAIRED"],
               [[c.name + (" *" if c.name == conns.default else ""), c.address, fingerprint(c.public_bytes),
                 c.paired_at] for c in listed], empty="no connections; pair with `runwrap pair CODE`")


def show_peers(lay: Layout, socket: Path | None, *, as_json: bool) -> None:
    """`peers list`: the paired consumers, their keys and scopes, and their running leases if the listener runs."""
    from runwrap.listener import manage
    from runwrap.listener.peers import Peers
    from runwrap.wire.identity import fingerprint

    try:
        leases: dict[str, int] | None = manage.status(lay, socket_path=socket).leases
    except RunwrapError:
        if socket is not None:
            raise  # the listener named was not reached: say so rather than show the files as its state
        leases = None
    peers = Peers(lay.peers)
    rows: list[dict[str, Any]] = [{"name": p.name, "fingerprint": fingerprint(p.public_bytes), "scope": p.scope,
                                   "paired_at": p.paired_at, "revoked": p.revoked,
                                   "leases": None if leases is None else leases.get(p.name, 0)}
                                  for p in peers.by_name.values()]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    echo_table(["NAME", "KEY", "SCOPE", "PAIRED", "STATE", "LEASES"],
               [[r["name"], r["fingerprint"], " ".join(r["scope"]), r["paired_at"],
                 "revoked" if r["revoked"] else "active", "-" if r["leases"] is None else str(r["leases"])]
                for r in rows], empty="no peers")
