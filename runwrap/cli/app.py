"""The typer application: parses arguments and calls the library, nothing more.

Errors leave through `run_app`, which hands them to runwrap.errors.report with the command's family
(the exec forms, `connect`, every other command): its table gives the exit status. A library
parser's ValueError becomes a UsageError here, at the parse boundary (`_parsed`), never by
catching ValueError around a command.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from typer._click.exceptions import NoArgsIsHelpError
from typer._click.exceptions import UsageError as TyperUsageError

from runwrap.cli import complete, tables
from runwrap.cli.profiles import profiles_app
from runwrap.cli.tables import echo_table as _table
from runwrap.errors import CONNECT, EXEC, OTHER, RunwrapError, UsageError, report, status

if TYPE_CHECKING:
    from runwrap.paths import Layout

T = TypeVar("T")

# The \b line keeps click from reflowing the examples into one paragraph.
EPILOG = """Examples:

\b
  runwrap listen --provider example          # where the vault is
  runwrap invite --name ci --scope github.com
  runwrap pair 4821-K7QX-M2PD                 # where the command runs
  runwrap deploy -- ./deploy.sh               # profiles/deploy.yaml names the credentials
  runwrap run --domain github.com --env GH_TOKEN=password -- gh repo list
  runwrap connect --domain github.com --output json
  runwrap help invite                         # the options of one command
"""

app = typer.Typer(
    name="runwrap",
    cls=complete.RootGroup,
    help="Run a command with exactly the secrets its profile names, fetched from a paired listener, "
    "masked in its output and supervised.\n\nMain form: runwrap PROFILE [--connection NAME] [--no-mask] "
    "[--timeout DUR] [--dry-run] -- CMD [ARG...]",
    epilog=EPILOG,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
connections_app = typer.Typer(help="The listeners this consumer is paired with.", no_args_is_help=True)
peers_app = typer.Typer(help="The consumers paired with this listener.", no_args_is_help=True)
app.add_typer(connections_app, name="connections")
app.add_typer(peers_app, name="peers")
app.add_typer(profiles_app, name="profiles")

_DEBUG = False  # --debug, taken off the command line by runwrap.__main__

# The command families of runwrap.errors.STATUSES; every command not named here is OTHER.
FAMILIES = {"exec": EXEC, "run": EXEC, "connect": CONNECT}


# Which listener the owner's commands ask (runwrap.listener.manage.control_socket says how it is found).
SocketOption = Annotated[Path | None, typer.Option(
    "--socket", metavar="PATH", help="The listener's control socket (default: the running listener's).")]


class Output(str, Enum):
    text = "text"
    json = "json"


class Approve(str, Enum):
    never = "never"
    first = "first"
    always = "always"


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version  # the installed package's; read only for --version

        typer.echo(f"runwrap {version('runwrap')}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[bool | None, typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Print the version and exit.")] = None,
) -> None:
    """runwrap"""


def _layout() -> Layout:
    from runwrap.paths import layout

    return layout()


def _parsed(option: str, parse: Callable[[str], T], text: str) -> T:
    """The parse boundary: a library parser's ValueError is the user's usage error, naming the option."""
    try:
        return parse(text)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None


def _duration(option: str, text: str, *, positive: bool = False, bounded: bool = False) -> float:
    from runwrap.durations import check_wait, parse_duration

    seconds = _parsed(option, parse_duration, text)
    if bounded:  # what the supervisor waits for: at most 24 days
        seconds = _parsed(option, lambda shown: check_wait(seconds, shown), text)
    if positive and seconds <= 0:
        raise UsageError(f"{option} must be longer than zero")
    return seconds


def _key_values(option: str, items: list[str] | None) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{option} takes KEY=VALUE, not {item!r}")
        pairs[key] = value
    return pairs


# ---- exec forms (`runwrap PROFILE -- cmd` never reaches typer; these entries give help and completion) ----

@app.command("exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
             add_help_option=False, cls=complete.ExecCommand)
def exec_(ctx: typer.Context) -> None:
    """Run CMD with the credentials PROFILE names: runwrap exec PROFILE [flags] -- CMD [ARG...]"""
    from runwrap.cli import exec_args

    raise typer.Exit(exec_args.main(list(ctx.args), _DEBUG))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run(
    ctx: typer.Context,
    domain: Annotated[str | None, typer.Option(
        metavar="DOMAIN", help="The item whose host is this domain or a parent of it.")] = None,
    id: Annotated[str | None, typer.Option("--id", metavar="ID", help="The vault item id.")] = None,
    env: Annotated[list[str] | None, typer.Option("--env", metavar="VAR=FIELD", help="Repeatable.")] = None,
    env_all: Annotated[bool, typer.Option("--env-all", help="Every field as PREFIX+FIELD.")] = False,
    file: Annotated[list[str] | None, typer.Option("--file", metavar="VAR=FIELD", help="Repeatable: the field as "
                                                   "an in-memory file (mode 0400), VAR its /dev/fd path.")] = None,
    prefix: Annotated[str, typer.Option(metavar="PREFIX", help="Prefix for --env-all.")] = "AAC_",
    keep_env: Annotated[list[str] | None, typer.Option(
        "--keep-env", metavar="NAME", help="Also inherit NAME (a glob), repeatable.")] = None,
    connection: Annotated[str | None, typer.Option(metavar="NAME", help="The paired listener to ask.",
                                                   autocompletion=complete.connection_names)] = None,
    no_mask: Annotated[bool, typer.Option("--no-mask", help="Do not mask output.")] = False,
    mask_hex: Annotated[bool, typer.Option("--mask-hex", help="Also mask hex forms (slower).")] = False,
    timeout: Annotated[str | None, typer.Option(metavar="DUR", help="End the command after DUR (exit 124).")] = None,
    rate_wait: Annotated[str | None, typer.Option(metavar="DUR", help="Wait up to DUR when rate limited "
                                                  "(default RUNWRAP_RATE_WAIT, else 5s).")] = None,
    on_change: Annotated[str, typer.Option("--on-change", metavar="MODE", help="When the item changes while CMD "
                                           "runs: restart, signal:NAME, exit or none.")] = "none",
) -> None:
    """Run CMD with one item's fields as variables (aac's flags): runwrap run --domain D --env VAR=FIELD -- CMD"""
    from runwrap import run_flags as launch
    from runwrap.consumer.client import parse_rate_wait

    command = list(ctx.args)
    if not command:
        raise UsageError("no command: runwrap run --domain D --env VAR=FIELD -- CMD [ARG...]")
    if (domain is None) == (id is None):
        raise UsageError("name exactly one of --domain or --id")
    args = launch.RunArgs(domain=domain, id=id, env=list(env or []), env_all=env_all, prefix=prefix,
                          keep_env=list(keep_env or []), connection=connection, mask=not no_mask,
                          timeout=_duration("--timeout", timeout, bounded=True) if timeout else None,
                          command=command, files=list(file or []), mask_hex=mask_hex, on_change=on_change,
                          rate_wait=_parsed("--rate-wait", parse_rate_wait, rate_wait) if rate_wait else None)
    raise typer.Exit(launch.exec_run(args))


# ---- consumer commands ----

@app.command()
def connect(
    domain: Annotated[str | None, typer.Option(
        metavar="DOMAIN", help="The item whose host is this domain or a parent of it.")] = None,
    id: Annotated[str | None, typer.Option("--id", metavar="ID", help="The vault item id.")] = None,
    connection: Annotated[str | None, typer.Option(metavar="NAME", help="The paired listener to ask.",
                                                   autocompletion=complete.connection_names)] = None,
    output: Annotated[Output, typer.Option(help="text or json (aac's shape).")] = Output.text,
) -> None:
    """Fetch one credential and print it (exit 0 ok, 1 error, 2 connection failed, 3 handshake, 4 not found
    or denied, 5 fingerprint mismatch)."""
    from runwrap.api import Client
    from runwrap.credential import FIELDS

    try:
        if (domain is None) == (id is None):
            raise UsageError("name exactly one of --domain or --id")
        with Client(connection) as client, client.credential(domain=domain, id=id) as cred:
            values = {name: (cred[name].reveal() if name in cred else None) for name in FIELDS}
            ttl = cred.ttl
    except Exception as exc:
        if output != Output.json:
            raise  # run_app reports it
        raise typer.Exit(report(exc, CONNECT, debug=_DEBUG, json_output=True)) from None
    if output == Output.json:
        typer.echo(json.dumps({"success": True, "credential": values}))
    else:
        for name, value in values.items():
            if value is not None:
                typer.echo(f"{name}: {value}")
        if ttl is not None:  # nothing holds a lease for it, so nothing renews or revokes it
            typer.echo(f"note: a dynamic secret; it expires by its TTL in {ttl:g}s (connect holds no lease)")


@app.command()
def pair(
    code: Annotated[str, typer.Argument(metavar="CODE", hidden=True)],
    address: Annotated[str | None, typer.Option(
        metavar="ADDRESS", help="unix:PATH or tcp:HOST:PORT (default: the local listener).")] = None,
    name: Annotated[str | None, typer.Option(metavar="NAME", help="A name for this connection.")] = None,
) -> None:
    """Pair this consumer with a listener using CODE, the one-time code `runwrap invite` (or
    `runwrap listen`) printed there."""
    from runwrap.consumer.pairing import pair as do_pair
    from runwrap.wire.identity import fingerprint

    lay = _layout()
    conn = do_pair(code, address or f"unix:{lay.socket}", name, lay)
    typer.echo(f"paired: connection {conn.name} -> {conn.address} (listener key {fingerprint(conn.public_bytes)})")


@connections_app.command("list")
def connections_list(output: Annotated[Output, typer.Option()] = Output.text) -> None:
    """The paired listeners."""
    tables.show_connections(_layout(), as_json=output == Output.json)


@connections_app.command("remove")
def connections_remove(name: Annotated[str, typer.Argument(
        metavar="NAME", hidden=True, autocompletion=complete.connection_names)]) -> None:
    """Forget the paired listener NAME."""
    from runwrap.consumer.connections import Connections

    Connections(_layout().connections).remove(name)
    typer.echo(f"removed connection {name}")


# ---- listener commands ----

@app.command()
def listen(
    provider: Annotated[str, typer.Option(
        metavar="NAME", help="example, pass, bitwarden, keepass, command or a plugin.",
        autocompletion=complete.provider_names)] = "example",
    provider_option: Annotated[list[str] | None, typer.Option(
        "--provider-option", metavar="KEY=VALUE", help="An option of the provider, repeatable.")] = None,
    socket: Annotated[Path | None, typer.Option(metavar="PATH", help="The Unix socket to listen on.")] = None,
    tcp: Annotated[str | None, typer.Option(metavar="HOST:PORT", help="Also listen on HOST:PORT.")] = None,
    approve: Annotated[Approve, typer.Option(
        help="Ask on this terminal before the vault is read: never, first (once per peer and domain, "
        "remembered for --approve-ttl), always.")] = Approve.never,
    approve_ttl: Annotated[str, typer.Option(
        metavar="DUR", help="How long --approve first remembers an answer.")] = "1h",
    approve_timeout: Annotated[str, typer.Option(
        metavar="DUR", help="An approval not answered in DUR is a no.")] = "2m",
    rate: Annotated[str, typer.Option(metavar="N/PERIOD", help="Different items (and denied queries) one "
                                                                "peer may receive per PERIOD.")] = "120/1m",
    audit_log: Annotated[Path | None, typer.Option(
        metavar="PATH", help="Where to write the audit log (default: the state folder's audit.log).")] = None,
    max_lease: Annotated[str | None, typer.Option(
        metavar="DUR", help="End leases (running children) older than DUR; their children are stopped.")] = None,
    cache_ttl: Annotated[str | None, typer.Option(
        metavar="DUR", help="Keep looked-up items in memory for DUR.")] = None,
    watch_interval: Annotated[str, typer.Option(
        metavar="DUR", help="How often the items of leases that follow changes (on_change) are checked.")] = "30s",
) -> None:
    """Serve credentials from a vault to paired consumers."""
    import getpass

    from runwrap.durations import parse_rate
    from runwrap.listener import manage, server
    from runwrap.wire.address import parse_host_port

    options = server.Options(
        provider_name=provider, approve=approve.value, rate=_parsed("--rate", parse_rate, rate),
        max_lease=_duration("--max-lease", max_lease, positive=True) if max_lease else None,
        tcp=_parsed("--tcp", parse_host_port, tcp) if tcp else None, socket_path=socket, audit_path=audit_log,
        approve_ttl=_duration("--approve-ttl", approve_ttl),
        approve_timeout=_duration("--approve-timeout", approve_timeout),
        watch_interval=_duration("--watch-interval", watch_interval, positive=True))
    manage.serve(_layout(), provider, _key_values("--provider-option", provider_option), options,
                 cache_ttl=_duration("--cache-ttl", cache_ttl) if cache_ttl else None,
                 prompt=getpass.getpass if sys.stdin.isatty() else None)
    # Stopped cleanly: the audit log is fsynced and closed, the socket and listener.json are gone, the
    # provider is closed. The interpreter's teardown of the listener's modules would add ~0.2 s to a TERM.
    from runwrap.supervise.signals import flush_stdio

    flush_stdio()
    os._exit(0)


def _scope(option: str, patterns: list[str]) -> list[str]:
    from runwrap.listener.policy import check_pattern

    return [_parsed(option, check_pattern, p) for p in patterns]


@app.command()
def invite(
    name: Annotated[str | None, typer.Option(metavar="NAME", help="The peer's name.")] = None,
    scope: Annotated[list[str] | None, typer.Option(
        metavar="PATTERN", help="What the peer may ask for, repeatable (github.com, *.example.com, "
        "id:UUID, *).")] = None,
    ttl: Annotated[str, typer.Option(metavar="DUR", help="How long the code is valid.")] = "5m",
    output: Annotated[Output, typer.Option()] = Output.text,
    socket: SocketOption = None,
) -> None:
    """Ask the running local listener for a one-time pairing code for a peer with a scope (required)."""
    from runwrap.listener import manage

    if not scope:  # least privilege: the whole vault only when asked for by name
        raise UsageError("name what the peer may ask for: runwrap invite --name NAME --scope github.com "
                         "(repeatable; --scope '*' for everything)")
    lifetime = _duration("--ttl", ttl, positive=True)
    if not 1.0 <= lifetime <= 7 * 86400.0:
        raise UsageError(f"--ttl must be between 1s and 7d, not {ttl}")
    code = manage.invite(_layout(), name, _scope("--scope", scope), lifetime, socket_path=socket)
    if output == Output.json:
        typer.echo(json.dumps({"code": code.code, "address": code.address, "expires_at": code.expires_at}))
    else:
        typer.echo(f"runwrap pair {code.code} --address {code.address}")
        typer.echo(f"(single use, expires {code.expires_at})")


@peers_app.command("list")
def peers_list(output: Annotated[Output, typer.Option()] = Output.text, socket: SocketOption = None) -> None:
    """The paired consumers, their keys and scopes, and their running leases if the listener runs."""
    tables.show_peers(_layout(), socket, as_json=output == Output.json)


@peers_app.command("revoke")
def peers_revoke(name: Annotated[str, typer.Argument(metavar="NAME", hidden=True,
                                                     autocompletion=complete.peer_names)],
                 socket: SocketOption = None) -> None:
    """Refuse peer NAME's key from now on and end its running children at once."""
    from runwrap.listener import manage

    change = manage.revoke(_layout(), name, socket_path=socket)
    if change.live:
        typer.echo(f"revoked {name}; ended {change.ended} running lease(s)")
    else:
        typer.echo(f"revoked {name} (no listener is running; the next one refuses its key)")


@peers_app.command("scope")
def peers_scope(name: Annotated[str, typer.Argument(metavar="NAME", hidden=True,
                                                    autocompletion=complete.peer_names)],
                patterns: Annotated[list[str], typer.Argument(metavar="PATTERN", hidden=True)],
                socket: SocketOption = None) -> None:
    """Replace peer NAME's scope with the PATTERNs (github.com, *.example.com, id:UUID, *); it applies
    to the peer's next request, even on an open session."""
    from runwrap.listener import manage

    change = manage.set_scope(_layout(), name, _scope("PATTERN", patterns), socket_path=socket)
    typer.echo(f"scope of {name}: {' '.join(change.scope)}" + ("" if change.live else " (no listener is running)"))


@app.command()
def audit(
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events.")] = False,
    output: Annotated[Output, typer.Option(help="text (a table) or json (one event a line).")] = Output.text,
    file: Annotated[Path | None, typer.Option(
        metavar="PATH", help="Read this audit log instead of the running listener's.")] = None,
    socket: SocketOption = None,
) -> None:
    """Show the listener's audit log, oldest first (a torn last line from a crash is skipped)."""
    from runwrap.listener import audit as audit_log
    from runwrap.listener import manage

    path = file or manage.audit_log(_layout(), socket)
    events, offset = audit_log.read_log(path, missing_ok=follow)
    header = [c.upper() for c in audit_log.COLUMNS]
    rows = [audit_log.format_row(e) for e in events]
    if output == Output.json:
        for event in events:
            typer.echo(json.dumps(event))
    elif rows or not follow:
        _table(header, rows, empty=f"no events in {path}")
    if not follow:
        return
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    if not rows and output == Output.text:
        typer.echo("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    try:
        for event in audit_log.follow(path, offset):
            if output == Output.json:
                typer.echo(json.dumps(event))
            else:
                cells = zip(audit_log.format_row(event), widths, strict=True)
                typer.echo("  ".join(c.ljust(w) for c, w in cells).rstrip())
    except BrokenPipeError:
        raise typer.Exit(0) from None  # `runwrap audit -f | head`: the reader has seen enough


# ---- doctor and help ----

@app.command()
def doctor() -> None:
    """Providers and what each needs here, file modes, the local listener, and whether each connection's
    listener answers (exit 0 all well, 1 a file with a wrong mode, 3 a listener checked does not answer)."""
    from runwrap.cli.doctor import doctor as check

    raise typer.Exit(check(_layout()))


@app.command("help", context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
             add_help_option=False)
def help_(ctx: typer.Context) -> None:
    """Show the help of runwrap, or of COMMAND: runwrap help [COMMAND [SUBCOMMAND]]"""
    from runwrap.cli import exec_args

    words = list(ctx.args)
    if words and exec_args.is_exec_form(words):  # `runwrap help exec`, `runwrap help PROFILE`
        raise typer.Exit(exec_args.main(["--help"]))
    raise typer.Exit(run_app([*words, "--help"], debug=_DEBUG))


# ---- the one way out ----

def run_app(args: list[str], *, debug: bool = False) -> int:
    """Run the typer app on `args` and return the exit status; every error goes to errors.report."""
    global _DEBUG
    _DEBUG = debug
    complete.normalize_instruction(os.environ)  # click's `bash_complete` as well as typer's `complete_bash`
    family = FAMILIES.get(args[0], OTHER) if args else OTHER
    try:
        result = app(args=args, prog_name="runwrap", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:  # end of input at a prompt
        return 130
    except NoArgsIsHelpError as exc:  # `runwrap peers`: the help, as a usage error
        exc.show()
        return status(UsageError("no command given"), family)
    except typer.TyperException as exc:
        return report(_translated(exc), family, debug=debug)
    except Exception as exc:
        return report(exc, family, debug=debug)
    except SystemExit as exc:  # typer's own way out after a broken pipe
        return exc.code if isinstance(exc.code, int) else 1
    return result if isinstance(result, int) else 0


def _translated(exc: typer.TyperException) -> RunwrapError:
    """typer's errors in runwrap's words: one line, a usage error naming the command's --help."""
    if isinstance(exc, TyperUsageError):
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        error: RunwrapError = UsageError(exc.format_message().rstrip(".") + hint)
    else:
        error = RunwrapError(exc.format_message())
    error.__cause__ = exc  # --debug shows where typer raised it
    return error
