"""`runwrap doctor`: what works on this machine, checked rather than assumed.

Providers: usable, what `listen --provider NAME` still needs (`Provider.needs`), or why it cannot
work here. Files: runwrap's folders 0700 and files 0600. The local listener: the one `invite` and
`peers` ask (runwrap.listener.manage.status). Connections: each paired listener, reached with a
Noise handshake and no request (nothing is fetched, nothing is audited). The exit status says
whether a listener doctor checks answers (errors.DOCTOR_*).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from runwrap.errors import DOCTOR_NO_LISTENER, DOCTOR_PROBLEM, RunwrapError

if TYPE_CHECKING:
    from runwrap.paths import Layout

REACH_TIMEOUT = 3.0  # seconds a connection's listener has to answer the handshake


def doctor(lay: Layout) -> int:
    """Print every check and return the exit status: 0 all well, DOCTOR_PROBLEM a file with a wrong
    mode, DOCTOR_NO_LISTENER a listener checked that does not answer (a connection's, or the local
    one when there are no connections)."""
    _providers()
    problems = _files(lay)
    local_up = _local_listener(lay)
    reached, total = _connections(lay)
    if problems:
        return DOCTOR_PROBLEM
    if (total and reached < total) or (not total and not local_up):
        return DOCTOR_NO_LISTENER
    return 0


def _providers() -> None:
    from runwrap.providers import available

    typer.echo("providers:")
    for name, cls in available().items():
        reason = cls.unusable_reason()
        needs = cls.needs() if reason is None else None
        if reason is not None:
            state = f"not usable: {reason}"
        elif needs is not None:
            state = f"listen --provider {name} needs {needs}"
        else:
            state = "usable"
        typer.echo(f"  {name:<10} {state}")


def _files(lay: Layout) -> int:
    from runwrap.paths import wrong_modes

    typer.echo("files:")
    bad = wrong_modes(lay)
    for line in bad:
        typer.echo(f"  wrong mode: {line}")
    if not bad:
        typer.echo("  modes ok (folders 0700, files 0600)")
    return len(bad)


def _local_listener(lay: Layout) -> bool:
    from runwrap.listener import manage

    try:
        running = manage.status(lay)
    except RunwrapError as exc:
        typer.echo(f"listener: not running here ({exc})")
        return False
    typer.echo(f"listener: running on {running.address} (provider {running.provider})")
    return True


def _connections(lay: Layout) -> tuple[int, int]:
    """(how many connections answered, how many there are), each printed with what was found."""
    from runwrap.consumer.client import Endpoint
    from runwrap.consumer.connections import Connections

    listed = list(Connections(lay.connections).by_name.values())
    if not listed:
        typer.echo("connections: none; pair with `runwrap pair CODE --address ADDRESS`")
        return 0, 0
    typer.echo("connections:")
    reached = 0
    for conn in listed:
        try:
            Endpoint.pick(lay, conn.name).open(timeout=REACH_TIMEOUT).close()
        except (RunwrapError, OSError) as exc:
            typer.echo(f"  {conn.name:<10} {conn.address}: not answering: {exc}")
            continue
        reached += 1
        typer.echo(f"  {conn.name:<10} {conn.address}: answers, key as pinned")
    return reached, len(listed)
