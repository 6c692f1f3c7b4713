"""The typer application: parses arguments and calls the library, nothing more.

Exit statuses: the exec forms follow SPEC (the child's, 124-127); `connect` follows aac (0-5);
every other command exits 0 on success, 1 on a runwrap error, 2 on a usage error.
"""

from __future__ import annotations

import json
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from runwrap.errors import RunwrapError, UsageError

EPILOG = """Examples:

  runwrap listen --provider example          # where the vault is
  runwrap invite --name ci --scope github.com
  runwrap pair 4821-K7QX-M2PD                 # where the command runs
  runwrap deploy -- ./deploy.sh               # profiles/deploy.yaml names the credentials
  runwrap run --domain github.com --env GH_TOKEN=password -- gh repo list
  runwrap connect --domain github.com --output json
"""

app = typer.Typer(
    name="runwrap",
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
profiles_app = typer.Typer(help="Find, show and check profiles.", no_args_is_help=True)
app.add_typer(connections_app, name="connections")
app.add_typer(peers_app, name="peers")
app.add_typer(profiles_app, name="profiles")

_DEBUG = False


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


def _layout() -> Any:
    from runwrap.paths import layout

    return layout()


def _fail(exc: RunwrapError, status: int = 1) -> typer.Exit:
    sys.stderr.write(f"runwrap: {exc.message}\n")
    return typer.Exit(status)


# ---- exec forms (real parsing happens in runwrap.launch; these entries give --help and completion) ----

@app.command("exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
             add_help_option=False)
def exec_(ctx: typer.Context) -> None:
    """Run CMD with the credentials PROFILE names: runwrap exec PROFILE [flags] -- CMD [ARG...]"""
    from runwrap.__main__ import _exec

    raise typer.Exit(_exec(list(ctx.args), _DEBUG))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run(
    ctx: typer.Context,
    domain: Annotated[str | None, typer.Option(help="The item whose host is this domain or a parent of it.")] = None,
    id: Annotated[str | None, typer.Option("--id", help="The vault item id.")] = None,
    env: Annotated[list[str] | None, typer.Option("--env", help="VAR=FIELD, repeatable.")] = None,
    env_all: Annotated[bool, typer.Option("--env-all", help="Every field as PREFIX+FIELD.")] = False,
    prefix: Annotated[str, typer.Option(help="Prefix for --env-all.")] = "AAC_",
    keep_env: Annotated[list[str] | None, typer.Option("--keep-env", help="Also inherit NAME (glob).")] = None,
    connection: Annotated[str | None, typer.Option(help="The paired listener to ask.")] = None,
    no_mask: Annotated[bool, typer.Option("--no-mask", help="Do not mask output.")] = False,
    timeout: Annotated[str | None, typer.Option(help="End the command after DUR (exit 124).")] = None,
) -> None:
    """Run CMD with one item's fields as variables (aac's flags): runwrap run --domain D --env VAR=FIELD -- CMD"""
    from runwrap import launch
    from runwrap.durations import parse_duration

    command = list(ctx.args)
    try:
        if not command:
            raise UsageError("no command: runwrap run --domain D --env VAR=FIELD -- CMD [ARG...]")
        if (domain is None) == (id is None):
            raise UsageError("name exactly one of --domain or --id")
        seconds = parse_duration(timeout) if timeout else None
        args = launch.RunArgs(domain=domain, id=id, env=list(env or []), env_all=env_all, prefix=prefix,
                              keep_env=list(keep_env or []), connection=connection, mask=not no_mask,
                              timeout=seconds, command=command)
        raise typer.Exit(launch.exec_run(args))
    except ValueError as exc:
        raise _fail(UsageError(str(exc)), 125) from None
    except RunwrapError as exc:
        if _DEBUG:
            raise
        raise _fail(exc, exc.exit_status) from None


# ---- consumer commands ----

@app.command()
def connect(
    domain: Annotated[str | None, typer.Option(help="The item whose host is this domain or a parent of it.")] = None,
    id: Annotated[str | None, typer.Option("--id", help="The vault item id.")] = None,
    connection: Annotated[str | None, typer.Option(help="The paired listener to ask.")] = None,
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
    except RunwrapError as exc:
        if output == Output.json:
            typer.echo(json.dumps({"success": False, "error": {"message": exc.message, "code": exc.code}}))
            raise typer.Exit(exc.connect_status) from None
        raise _fail(exc, exc.connect_status) from None
    if output == Output.json:
        typer.echo(json.dumps({"success": True, "credential": values}))
    else:
        for name, value in values.items():
            if value is not None:
                typer.echo(f"{name}: {value}")


@app.command()
def pair(
    code: Annotated[str, typer.Argument(help="The one-time code from `runwrap invite` or `runwrap listen`.")],
    address: Annotated[str | None, typer.Option(
        help="unix:PATH or tcp:HOST:PORT (default: the local listener).")] = None,
    name: Annotated[str | None, typer.Option(help="A name for this connection.")] = None,
) -> None:
    """Pair this consumer with a listener using a one-time code."""
    from runwrap.client import pair as do_pair
    from runwrap.store import fingerprint

    lay = _layout()
    try:
        conn = do_pair(code, address or f"unix:{lay.socket}", name, lay)
    except RunwrapError as exc:
        raise _fail(exc) from None
    typer.echo(f"paired: connection {conn.name} -> {conn.address} (listener key {fingerprint(conn.public_bytes)})")


@connections_app.command("list")
def connections_list(output: Annotated[Output, typer.Option()] = Output.text) -> None:
    """The paired listeners."""
    from runwrap.store import Connections, fingerprint

    try:
        conns = Connections(_layout().connections)
    except RunwrapError as exc:
        raise _fail(exc) from None
    listed = list(conns.by_name.values())
    if output == Output.json:
        typer.echo(json.dumps([{"name": c.name, "address": c.address, "fingerprint": fingerprint(c.public_bytes),
                                "paired_at": c.paired_at, "default": c.name == conns.default} for c in listed]))
        return
    _table(["NAME", "ADDRESS", "LISTENER KEY", "PAIRED"],
           [[c.name + (" *" if c.name == conns.default else ""), c.address, fingerprint(c.public_bytes),
             c.paired_at] for c in listed], empty="no connections; pair with `runwrap pair CODE`")


@connections_app.command("remove")
def connections_remove(name: str) -> None:
    """Forget a paired listener."""
    from runwrap.store import Connections

    try:
        Connections(_layout().connections).remove(name)
    except RunwrapError as exc:
        raise _fail(exc) from None
    typer.echo(f"removed connection {name}")


# ---- listener commands ----

@app.command()
def listen(
    provider: Annotated[str, typer.Option(
        help="example, pass, bitwarden, keepass, command or a plugin.")] = "example",
    provider_option: Annotated[list[str] | None, typer.Option(
        "--provider-option", help="KEY=VALUE for the provider, repeatable.")] = None,
    socket: Annotated[Path | None, typer.Option(help="The Unix socket to listen on.")] = None,
    tcp: Annotated[str | None, typer.Option(help="Also listen on HOST:PORT.")] = None,
    approve: Annotated[Approve, typer.Option(
        help="Ask on this terminal before the vault is read: never, first (once per peer and domain, "
        "remembered for --approve-ttl), always.")] = Approve.never,
    approve_ttl: Annotated[str, typer.Option(help="How long --approve first remembers an answer.")] = "1h",
    approve_timeout: Annotated[str, typer.Option(help="An approval not answered in DUR is a no.")] = "2m",
    rate: Annotated[str, typer.Option(help="Requests per peer, N/PERIOD (a token bucket: a burst of N, "
                                           "then N per PERIOD).")] = "120/1m",
    audit_log: Annotated[Path | None, typer.Option(
        help="Where to write the audit log (default: the state folder's audit.log).")] = None,
    max_lease: Annotated[str | None, typer.Option(
        help="End leases (running children) older than DUR; their children are stopped.")] = None,
    cache_ttl: Annotated[str | None, typer.Option(help="Keep looked-up items in memory for DUR.")] = None,
) -> None:
    """Serve credentials from a vault to paired consumers."""
    import getpass

    from runwrap import listener as listener_mod
    from runwrap.durations import parse_duration, parse_rate
    from runwrap.providers import CachingProvider, load

    try:
        options: dict[str, str] = {}
        for item in provider_option or []:
            key, sep, value = item.partition("=")
            if not sep:
                raise UsageError(f"--provider-option takes KEY=VALUE, not {item!r}")
            options[key] = value
        tcp_addr = None
        if tcp:
            host, sep, port = tcp.rpartition(":")
            if not sep or not port.isdigit():
                raise UsageError(f"--tcp takes HOST:PORT, not {tcp!r}")
            tcp_addr = (host.strip("[]") or "127.0.0.1", int(port))
        lease_limit = parse_duration(max_lease) if max_lease else None
        if lease_limit is not None and lease_limit <= 0:
            raise UsageError("--max-lease must be longer than zero")
        if approve != Approve.never:
            _need_terminal(approve.value)
        opts = listener_mod.Options(
            provider_name=provider, approve=approve.value, rate=parse_rate(rate),
            max_lease=lease_limit, tcp=tcp_addr, socket_path=socket, audit_path=audit_log,
            approve_ttl=parse_duration(approve_ttl), approve_timeout=parse_duration(approve_timeout))
        prompt = (lambda question: getpass.getpass(question)) if sys.stdin.isatty() else None
        backend = load(provider, options, prompt)
        if cache_ttl:
            backend = CachingProvider(backend, parse_duration(cache_ttl))
        server = listener_mod.Listener(_layout(), backend, opts)
        listener_mod.run(server)
    except ValueError as exc:
        raise _fail(UsageError(str(exc)), 2) from None
    except RunwrapError as exc:
        if _DEBUG:
            raise
        raise _fail(exc) from None


def _need_terminal(mode: str) -> None:
    """--approve asks on /dev/tty; without one every request would be refused, so say so at start."""
    import os

    try:
        os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))
    except OSError:
        raise UsageError(f"--approve {mode} asks on the listener's terminal, and this listener has none; "
                         "run it in a terminal (or tmux), or use --approve never") from None


@app.command()
def invite(
    name: Annotated[str | None, typer.Option(help="The peer's name.")] = None,
    scope: Annotated[list[str] | None, typer.Option(help="What the peer may ask for, repeatable "
                                                             "(github.com, *.example.com, id:UUID, *).")] = None,
    ttl: Annotated[str, typer.Option(help="How long the code is valid.")] = "5m",
    output: Annotated[Output, typer.Option()] = Output.text,
) -> None:
    """Ask the running local listener for a one-time pairing code."""
    from runwrap.client import control
    from runwrap.durations import parse_duration

    try:
        reply = control(_layout(), {"op": "invite", "name": name, "scope": list(scope or []),
                                    "ttl": parse_duration(ttl)})
    except ValueError as exc:
        raise _fail(UsageError(str(exc)), 2) from None
    except RunwrapError as exc:
        raise _fail(exc) from None
    if output == Output.json:
        typer.echo(json.dumps({k: reply[k] for k in ("code", "address", "expires_at")}))
    else:
        typer.echo(f"runwrap pair {reply['code']} --address {reply['address']}")
        typer.echo(f"(single use, expires {reply['expires_at']})")


@peers_app.command("list")
def peers_list(output: Annotated[Output, typer.Option()] = Output.text) -> None:
    """The paired consumers, their keys and scopes."""
    from runwrap.store import Peers, fingerprint

    try:
        peers = Peers(_layout().peers)
    except RunwrapError as exc:
        raise _fail(exc) from None
    rows: list[dict[str, Any]] = [{"name": p.name, "fingerprint": fingerprint(p.public_bytes), "scope": p.scope,
                                   "paired_at": p.paired_at, "revoked": p.revoked} for p in peers.by_name.values()]
    if output == Output.json:
        typer.echo(json.dumps(rows))
        return
    _table(["NAME", "KEY", "SCOPE", "PAIRED", "STATE"],
           [[r["name"], r["fingerprint"], " ".join(r["scope"]), r["paired_at"],
             "revoked" if r["revoked"] else "active"] for r in rows], empty="no peers")


@peers_app.command("revoke")
def peers_revoke(name: str) -> None:
    """Refuse a peer's key from now on and end its running children at once."""
    _peer_change({"op": "revoke", "name": name})


@peers_app.command("scope")
def peers_scope(name: str, patterns: Annotated[list[str], typer.Argument(help="New scope patterns.")]) -> None:
    """Replace a peer's scope (applies to its next request, even on an open session)."""
    _peer_change({"op": "scope", "name": name, "scope": patterns})


def _peer_change(request: dict[str, Any]) -> None:
    """Through the running listener if there is one (so it acts at once), else on the files."""
    from runwrap import policy
    from runwrap.audit import AuditLog
    from runwrap.client import control
    from runwrap.errors import ConnectionFailed
    from runwrap.store import Peers, fingerprint

    lay = _layout()
    try:
        try:
            reply = control(lay, request)
        except ConnectionFailed:
            peers = Peers(lay.peers)
            peer = peers.by_name.get(request["name"])
            if peer is None:
                raise RunwrapError(f"no peer named {request['name']!r}") from None
            old_scope = list(peer.scope)
            if request["op"] == "revoke":
                peer.revoked = True
                reply = {"ended": 0}
            else:
                peer.scope = [policy.check_pattern(p) for p in request["scope"]]
                reply = {"scope": peer.scope}
            peers.save()  # first: a revocation must hold even if the log below cannot be written
            log = AuditLog(lay.audit_log)
            try:
                if request["op"] == "revoke":
                    log.write("revoke", peer=peer.name, peer_fp=fingerprint(peer.public_bytes),
                              decision="revoked", reason="peer revoked (listener not running)")
                else:
                    log.write("scope", peer=peer.name, peer_fp=fingerprint(peer.public_bytes), decision="allowed",
                              reason=f"scope {' '.join(old_scope)} -> {' '.join(peer.scope)} (listener not running)")
            finally:
                log.close()
    except ValueError as exc:
        raise _fail(UsageError(str(exc)), 2) from None
    except RunwrapError as exc:
        raise _fail(exc) from None
    if request["op"] == "revoke":
        typer.echo(f"revoked {request['name']}; ended {reply.get('ended', 0)} running lease(s)")
    else:
        typer.echo(f"scope of {request['name']}: {' '.join(reply['scope'])}")


@app.command()
def audit(
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events.")] = False,
    output: Annotated[Output, typer.Option(help="text (a table) or json (one event a line).")] = Output.text,
    file: Annotated[Path | None, typer.Option(help="Read this audit log instead of the default.")] = None,
) -> None:
    """Show the listener's audit log, oldest first (a torn last line from a crash is skipped)."""
    from runwrap.audit import COLUMNS, format_row, parse_line

    path = file or _layout().audit_log
    events: list[dict[str, Any]] = []
    offset = 0
    try:
        with open(path, "rb") as handle:
            for raw in handle:
                event = parse_line(raw)
                if event is not None:
                    events.append(event)
                if raw.endswith(b"\n"):
                    offset += len(raw)  # --follow goes on after the last complete line
    except FileNotFoundError:
        if not follow:
            raise _fail(RunwrapError(f"no audit log at {path} (has a listener run with this home? "
                                     "use --file for a listener started with --audit-log)")) from None
    except OSError as exc:
        raise _fail(RunwrapError(f"cannot read the audit log {path}: {exc.strerror}")) from None
    header = [c.upper() for c in COLUMNS]
    rows = [format_row(e) for e in events]
    if output == Output.json:
        for event in events:
            typer.echo(json.dumps(event))
    elif rows or not follow:
        _table(header, rows, empty=f"no events in {path}")
    if follow:
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        if not rows and output == Output.text:
            typer.echo("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
        _follow(path, output, offset, widths)


def _follow(path: Path, output: Output, offset: int, widths: list[int]) -> None:
    """Print events as they are appended, like `tail -F`: follows a rotated or recreated file."""
    import os

    from runwrap.audit import format_row, parse_line

    identity: tuple[int, int] | None = None
    pending = b""
    try:
        while True:
            try:
                info = os.stat(path)
            except FileNotFoundError:
                time.sleep(0.2)
                continue
            if identity is not None and (info.st_dev, info.st_ino) != identity:
                offset, pending = 0, b""  # rotated or recreated: the new file from its start
            elif info.st_size < offset:
                offset, pending = 0, b""  # truncated
            identity = (info.st_dev, info.st_ino)
            if info.st_size == offset:
                time.sleep(0.2)
                continue
            with open(path, "rb") as handle:
                handle.seek(offset)
                data = handle.read()
            offset += len(data)
            *lines, pending = (pending + data).split(b"\n")
            for raw in lines:
                event = parse_line(raw)
                if event is None:
                    continue
                if output == Output.json:
                    typer.echo(json.dumps(event))
                else:
                    typer.echo("  ".join(c.ljust(w) for c, w in zip(format_row(event), widths, strict=True)).rstrip())
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except BrokenPipeError:
        raise typer.Exit(0) from None


# ---- profiles ----

@profiles_app.command("list")
def profiles_list() -> None:
    """Every profile runwrap can find, first hit per name."""
    import os

    from runwrap import profiles

    rows = [[name, str(path), desc] for name, path, desc in profiles.list_profiles(os.environ, Path.cwd())]
    _table(["NAME", "PATH", "DESCRIPTION"], rows, empty="no profiles found")


def _find_profile(name: str) -> Any:
    import os

    from runwrap import profiles

    try:
        return profiles.find(name, environ=os.environ, cwd=Path.cwd())
    except RunwrapError as exc:
        raise _fail(exc) from None


@profiles_app.command("show")
def profiles_show(name: str) -> None:
    """What a profile asks for and what its child's environment will be."""

    from runwrap.environment import DEFAULT_INHERIT

    prof = _find_profile(name)
    typer.echo(f"profile: {prof.name}\npath: {prof.path}")
    if prof.description:
        typer.echo(f"description: {prof.description}")
    typer.echo(f"connection: {prof.connection or '(default)'}")
    for spec in prof.credentials:
        typer.echo(f"credential: {spec.query}: " + ", ".join(f"{v}={f}" for v, f in spec.env.items()))
    typer.echo("inherit: " + " ".join(prof.inherit if prof.inherit is not None else DEFAULT_INHERIT))
    if prof.set:
        typer.echo("set: " + " ".join(sorted(prof.set)))
    typer.echo(f"mask: {'yes' if prof.mask else 'no'}")
    if prof.timeout:
        typer.echo(f"timeout: {prof.timeout:g}s")
    if prof.kill_grace is not None:
        typer.echo(f"kill_grace: {prof.kill_grace:g}s")


@profiles_app.command("check")
def profiles_check(name: str) -> None:
    """Validate a profile by name or file; exit 1 with FILE:LINE and the fix if it is wrong."""


    prof = _find_profile(name)
    typer.echo(f"ok: {prof.path} ({len(prof.credentials)} credential(s))")


# ---- doctor ----

@app.command()
def doctor() -> None:
    """Providers and whether each works here, file modes, the listener and the connections."""
    from runwrap.client import control
    from runwrap.paths import wrong_modes
    from runwrap.providers import available

    lay = _layout()
    problems = 0
    typer.echo("providers:")
    for name, cls in available().items():
        reason = cls.unusable_reason()
        typer.echo(f"  {name:<10} {'usable' if reason is None else 'not usable: ' + reason}")
    typer.echo("files:")
    bad = wrong_modes(lay)
    for line in bad:
        typer.echo(f"  wrong mode: {line}")
    if not bad:
        typer.echo("  modes ok (folders 0700, files 0600)")
    problems += len(bad)
    try:
        status = control(lay, {"op": "status"})
        typer.echo(f"listener: running on {status['address']} (provider {status['provider']})")
    except RunwrapError:
        typer.echo(f"listener: not running on unix:{lay.socket}")
    raise typer.Exit(1 if problems else 0)


def _table(header: list[str], rows: list[list[str]], *, empty: str) -> None:
    if not rows:
        typer.echo(empty)
        return
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        typer.echo("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def run_app(args: list[str], *, debug: bool = False) -> int:
    global _DEBUG
    _DEBUG = debug
    try:
        result = app(args=args, prog_name="runwrap", standalone_mode=False)
    except typer.Exit as exc:
        return int(getattr(exc, "exit_code", 0) or 0)
    except typer.Abort:
        return 130
    except typer.TyperException as exc:  # usage errors (typer's vendored click)
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            sys.stderr.write(f"runwrap: {exc}\n")
        return int(getattr(exc, "exit_code", 2))
    except RunwrapError as exc:
        if debug:
            raise
        sys.stderr.write(f"runwrap: {exc.message}\n")
        return 1
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int) else 1
    return result if isinstance(result, int) else 0
