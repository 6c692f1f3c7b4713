"""The exec path: `runwrap PROFILE -- cmd`, `runwrap exec PROFILE -- cmd` and `runwrap run ...`.

The library half, with plain arguments (`ExecArgs`, `RunArgs`); runwrap.cli.exec_args parses the
command line into them. This is the hot path (shebang lines, Makefile recipes), so it never imports
typer. Order matters: harden the process, read and check the profile, resolve the command,
and only then ask the listener — so a broken profile or a missing command never fetches a secret,
and a failed fetch never starts a child.
"""

from __future__ import annotations

import gc
import os
import sys

from runwrap import environment
from runwrap.errors import RunwrapError, UsageError
from runwrap.profile.model import CredentialSpec, FileSpec, Profile
from runwrap.record import FrozenRecord, Record
from runwrap.secret import Secret

TYPE_CHECKING = False  # not typing's: the exec path imports this module
if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence

    from runwrap.consumer.client import Changed, Channel, Claim, HeldLease
    from runwrap.credential import Credential
    from runwrap.supervise.fileset import FileSet
    from runwrap.supervise.launch import OnChange, Revoked, Update

# One credential entry's values in the child: its variables, and the values inside its files (masked).
Share = tuple[dict[str, Secret], list[Secret]]

# The fields that name an item rather than open it. `run --env-all` injects every field without the
# user naming one, so these are not masked there: masking `github.com` garbles every URL and host
# the child prints, and hides nothing a secret needs. A field the user maps by name (a profile,
# `--env VAR=uri`) is masked whatever it is, as SPEC says; the README's Masking bullet says why.
IDENTIFIERS = frozenset({"uri", "domain", "credential_id"})


class ExecArgs(Record):
    """`runwrap PROFILE [flags] -- cmd` and `runwrap exec ...`."""

    __slots__ = ("command", "connection", "dry_run", "mask", "mask_hex", "profile", "rate_wait", "timeout")

    def __init__(self, profile: str, command: list[str], connection: str | None = None, mask: bool | None = None,
                 timeout: float | None = None, dry_run: bool = False, rate_wait: float | None = None,
                 mask_hex: bool = False) -> None:
        self.profile = profile
        self.command = command
        self.connection = connection
        self.mask = mask
        self.timeout = timeout
        self.dry_run = dry_run
        self.rate_wait = rate_wait  # None: RUNWRAP_RATE_WAIT, else the default
        self.mask_hex = mask_hex  # or the profile's mask_hex: true


class RunArgs(Record):
    """`runwrap run`, aac's spelling: one item, variables named on the command line."""

    __slots__ = (
        "command",
        "connection",
        "domain",
        "env",
        "env_all",
        "files",
        "id",
        "keep_env",
        "mask",
        "mask_hex",
        "on_change",
        "prefix",
        "rate_wait",
        "timeout",
    )

    def __init__(self, domain: str | None, id: str | None, env: list[str] | None = None,
                 env_all: bool = False, prefix: str = "AAC_", keep_env: list[str] | None = None,
                 connection: str | None = None, mask: bool = True, timeout: float | None = None,
                 command: list[str] | None = None, files: list[str] | None = None, rate_wait: float | None = None,
                 mask_hex: bool = False, on_change: str = "none") -> None:
        self.domain = domain
        self.id = id
        self.env = [] if env is None else env
        self.env_all = env_all
        self.prefix = prefix
        self.keep_env = [] if keep_env is None else keep_env
        self.connection = connection
        self.mask = mask
        self.timeout = timeout
        self.command = [] if command is None else command
        self.files = [] if files is None else files  # --file VAR=FIELD
        self.rate_wait = rate_wait
        self.mask_hex = mask_hex
        self.on_change = on_change  # --on-change, as the profile key


class Request(FrozenRecord):
    """What to fetch and how the child's environment is made: a profile's, or `run`'s one item."""

    __slots__ = ("credentials", "inherit", "name", "optional_fields", "set", "source")
    credentials: tuple[CredentialSpec, ...]
    source: str  # where the specs come from, for messages: a profile's path, or "<command line>"
    name: str  # the profile's name, for the listener's audit log ("" for `run`)
    inherit: tuple[str, ...] | None  # None: the default allow-list
    set: Mapping[str, str]
    optional_fields: bool  # `run --env-all`: a field the item lacks sets no variable

    def __init__(self, credentials: tuple[CredentialSpec, ...], *, source: str, name: str = "",
                 inherit: tuple[str, ...] | None = None, set: Mapping[str, str] | None = None,
                 optional_fields: bool = False) -> None:
        self._init(credentials=credentials, source=source, name=name, inherit=inherit,
                   set={} if set is None else set, optional_fields=optional_fields)

    @classmethod
    def of_profile(cls, profile: Profile) -> Request:
        return cls(profile.credentials, source=str(profile.path), name=profile.name, inherit=profile.inherit,
                   set=profile.set)


class Child(Record):
    """The resolved command, the child's exact environment, and the secrets in it, held once."""

    __slots__ = ("argv", "env", "secrets")

    def __init__(self, argv: list[str], env: dict[str, str | Secret], secrets: tuple[Secret, ...]) -> None:
        self.argv = argv
        self.env = env
        self.secrets = secrets

    def wipe(self) -> None:
        for secret in self.secrets:
            secret.wipe()


def resolve(request: Request, command: Sequence[str], parent: Mapping[str, str]) -> list[str]:
    """argv with argv[0] found on the PATH the child will have, as its exec would find it."""
    from runwrap.supervise.command import resolve_command

    path = environment.base(parent, request.inherit, request.set).get("PATH")
    return [resolve_command(command[0], path), *command[1:]]


def fetch_env(channel: Channel, request: Request, parent: Mapping[str, str], claim: Claim,
              files: FileSet | None = None, shares: list[Share] | None = None
              ) -> tuple[dict[str, str | Secret], tuple[Secret, ...]]:
    """The child's environment with the request's credentials in it, and those secrets (to wipe).

    The request's `files:` are made into `files`, their variables set to their paths; the values
    inside them are among the secrets returned, so they are masked and wiped like the others.
    Without `files` (`Client.env`, which hands back variables only) a request with files is refused.
    `shares` gets each entry's values, in order, for a change to replace some of them (`Following`).
    """
    from runwrap.consumer.client import fetch

    if files is None and any(spec.files for spec in request.credentials):
        raise UsageError(f"{request.source} has files:, which only `runwrap PROFILE -- cmd` can make"
                         " — run the command through runwrap instead")
    contents: dict[str, Secret] = {}
    inside: list[list[Secret]] = []  # the values in each entry's files, for the mask

    def take(spec: CredentialSpec, cred: Credential) -> None:
        inside.append(_file_share(request.source, spec, cred, contents))

    injected: dict[str, Secret] = {}
    try:
        injected = fetch(channel, request.credentials, request.source, claim, optional=request.optional_fields,
                         on_item=take)
        env = environment.build(parent, request.inherit, request.set, injected)
        if files is not None:
            for spec in request.credentials:
                for var, file in spec.files.items():
                    env[var] = files.add(var, contents[var], file.mode, path=file.path).path
                    contents[var].wipe()  # it lives in the file now
        if shares is not None:
            shares.extend(({var: injected[var] for var in spec.env if var in injected}, values)
                          for spec, values in zip(request.credentials, inside, strict=True))
        return env, (*injected.values(), *(value for values in inside for value in values))
    except BaseException:
        for value in (*injected.values(), *(v for values in inside for v in values), *contents.values()):
            value.wipe()
        raise


def _file_share(source: str, spec: CredentialSpec, cred: Credential, contents: dict[str, Secret]) -> list[Secret]:
    """What one entry's files hold, into `contents` (by variable); the values inside them, to mask."""
    for var, file in spec.files.items():
        contents[var] = _content(source, spec, var, file, cred)
    return [Secret(cred[name].buffer) for name in sorted({n for f in spec.files.values() for n in f.fields})]


def _content(source: str, spec: CredentialSpec, var: str, file: FileSpec, cred: Credential) -> Secret:
    """What the file `var` holds: one field's value, or the template with the fields put in."""
    from runwrap.profile.files import parse_template, render

    for name in file.fields:
        if name not in cred:
            has = f" (it has: {', '.join(cred.available)})" if cred.available else ""
            raise RunwrapError(f"{source}:{file.line or spec.line}: the item for {spec.query} has no {name}"
                               f" value{has}; remove the file {var} or pick another field")
    if file.field is not None:
        return Secret(cred[file.field].buffer)
    return render(parse_template(file.template or ""), cred)


def claim_for(argv0: str, request: Request) -> dict[str, str | int]:
    from runwrap.consumer.client import default_provenance

    return default_provenance(argv0, request.name)


# ---- the exec forms ----

def exec_profile(args: ExecArgs, environ: Mapping[str, str] | None = None) -> int:
    from runwrap.profile import lookup
    from runwrap.supervise.hardening import harden

    harden()
    parent = dict(os.environ if environ is None else environ)
    profile = lookup.find(args.profile, environ=parent, cwd=os.getcwd())
    request = Request.of_profile(profile)
    if args.dry_run:
        return _dry_run(profile, request, args.command, parent)
    return launch(request, args.command, parent, connection=args.connection or profile.connection,
                  mask=profile.mask if args.mask is None else args.mask,
                  timeout=args.timeout if args.timeout is not None else profile.timeout,
                  kill_grace=profile.kill_grace, rate_wait=args.rate_wait, mask_hex=args.mask_hex or profile.mask_hex,
                  on_change=profile.on_change)


def exec_run(args: RunArgs, environ: Mapping[str, str] | None = None) -> int:
    from runwrap.credential import Query
    from runwrap.supervise.hardening import harden

    harden()
    parent = dict(os.environ if environ is None else environ)
    try:
        query = Query(domain=args.domain, id=args.id)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    unmasked: list[str] = []
    if args.env_all and args.env:
        # Not silently one or the other: --env-all's fields are optional (an item without a TOTP
        # sets no AAC_TOTP), a named --env field is not, and one request cannot be both.
        raise UsageError("--env-all and --env do not combine: --env-all already sets every field as "
                         f"{args.prefix}NAME; to name your own variables, use --env VAR=FIELD for each")
    if args.env_all:
        mapping = environment.env_all(args.prefix)
        unmasked = [name for name, field in mapping.items() if field in IDENTIFIERS]
    elif args.env or args.files:
        mapping = environment.parse_env_flags(args.env)
    else:
        raise UsageError("name the variables: --env VAR=FIELD (repeatable) or --env-all [--prefix AAC_]"
                         " or --file VAR=FIELD")
    files = parse_file_flags(args.files, mapping)
    on_change = parse_on_change_flag(args.on_change, files)
    request = Request((CredentialSpec(query=query, env=mapping, line=0, files=files),), source="<command line>",
                      inherit=(*environment.DEFAULT_INHERIT, *args.keep_env), optional_fields=args.env_all)
    return launch(request, args.command, parent, connection=args.connection, mask=args.mask,
                  timeout=args.timeout, kill_grace=None, unmasked=unmasked, rate_wait=args.rate_wait,
                  mask_hex=args.mask_hex, on_change=on_change)


def parse_on_change_flag(flag: str, files: Mapping[str, FileSpec]) -> str:
    """`--on-change MODE` as the profile key reads it; UsageError for a bad one."""
    from runwrap.profile.model import parse_on_change

    try:
        mode = parse_on_change(flag)
    except ValueError as exc:
        raise UsageError(f"--on-change: {exc}") from None
    if mode.startswith("signal:") and not files:
        raise UsageError(f"--on-change {mode} needs --file: a running process's environment cannot be changed,"
                         " so only a file can show it a new value — add --file VAR=FIELD, or use restart")
    return mode


def parse_file_flags(flags: Sequence[str], taken: Mapping[str, str]) -> dict[str, FileSpec]:
    """`--file VAR=FIELD ...` to {VAR: FileSpec} (mode 0400, /dev/fd); UsageError for a bad one."""
    from runwrap.credential import is_field_name

    files: dict[str, FileSpec] = {}
    for flag in flags:
        name, sep, field = flag.partition("=")
        if not sep:
            raise UsageError(f"--file {environment.quote_name(flag)} has no field"
                             " — write VAR=FIELD, e.g. --file SSH_KEY=notes")
        if not environment.is_valid_name(name):
            raise UsageError(f"--file: {environment.quote_name(name)} is not a valid variable name"
                             " — use letters, digits and _, not starting with a digit")
        if not is_field_name(field):
            raise UsageError(f"--file {name}: {environment.quote_name(field)} is not a field name"
                             " — name an item key such as notes or password")
        if name in files or name in taken:
            raise UsageError(f"--file: {name} is already given — keep one")
        files[name] = FileSpec(field=field)
    return files


def launch(request: Request, command: list[str], parent: Mapping[str, str], *, connection: str | None,
           mask: bool, timeout: float | None, kill_grace: float | None, unmasked: Collection[str] = (),
           rate_wait: float | None = None, mask_hex: bool = False, on_change: str = "none") -> int:
    """Resolve the command, fetch, hold the lease, and supervise the child; its exit status.

    In this order, so a missing command never fetches a secret and a failed fetch never starts a
    child; whatever was fetched is wiped on every way out. Every injected value is masked except
    the variables named in `unmasked` (identifiers, see IDENTIFIERS); all are wiped. `on_change`
    (parse_on_change's form): what a change pushed by the listener does (docs/rotation.md).
    """
    from runwrap.consumer.client import Endpoint
    from runwrap.consumer.client import rate_wait as pick_rate_wait
    from runwrap.paths import config_dir

    argv = resolve(request, command, parent)
    wait = pick_rate_wait(rate_wait, parent)  # a bad RUNWRAP_RATE_WAIT is refused before anything is asked
    channel = Endpoint.pick_in(config_dir(parent), connection).open(meanwhile=_load_supervisor)
    from runwrap.supervise import supervisor
    from runwrap.supervise.fileset import FileSet

    channel.rate_wait = wait
    secrets: tuple[Secret, ...] = ()
    files = FileSet(parent)
    shares: list[Share] = []
    try:
        if any(file.path for spec in request.credentials for file in spec.files.values()):
            files.make_folder()
        claim = claim_for(command[0], request)
        env, secrets = fetch_env(channel, request, parent, claim, files, shares)
        lease = Following(channel.hold(claim, watch=on_change != "none"), request, parent, files, shares,
                          watch=on_change != "none", unmasked=unmasked)
    except BaseException:
        for value in secrets:
            value.wipe()
        files.remove()
        channel.close()
        raise
    child = Child(argv, env, secrets)
    shown = [env[name] for name in unmasked if name in env]
    masked = tuple(value for value in child.secrets if not any(value is other for other in shown))
    # The collector was off while starting (runwrap.__main__). What starting made lives as long as
    # runwrap: frozen, the collector never walks it again; what a long run makes is collected.
    gc.freeze()
    gc.enable()
    try:
        return supervisor.run(supervisor.Launch(
            argv=child.argv, env=child.env, secrets=masked, mask=mask, mask_hex=mask_hex, timeout=timeout,
            kill_grace=5.0 if kill_grace is None else kill_grace, lease=lease, files=files,
            on_change=_policy(on_change)))
    finally:
        files.remove()  # the supervisor removes them once the child's tree is gone; this is for its errors


def _load_supervisor() -> None:
    """Import the supervisor's modules (~3 ms) while the listener answers the handshake."""
    from runwrap.supervise import supervisor  # noqa: F401
    from runwrap.supervise.fileset import FileSet  # noqa: F401


def _policy(on_change: str) -> OnChange:
    from runwrap.supervise.launch import OnChange

    mode, _, name = on_change.partition(":")
    if not name:
        return OnChange(mode, None)
    import signal  # only for signal:NAME (signal.py's enums cost a launch ~0.5 ms)

    return OnChange(mode, signal.Signals[f"SIG{name}"])


class Following:
    """The held lease as the supervisor polls it: a change the listener pushes becomes the next
    child's values (`Update`), through the functions of the first fetch (`client.variables`,
    `_file_share`, `environment.build`), the entries it does not name copied as they are."""

    def __init__(self, held: HeldLease, request: Request, parent: Mapping[str, str], files: FileSet,
                 shares: list[Share], *, watch: bool, unmasked: Collection[str] = ()) -> None:
        self.held = held
        self.request = request
        self.parent = parent
        self.paths = {made.name: made.path for made in files.files}  # a file keeps its path
        self.shares = shares  # the latest values given to the supervisor, by entry
        self.watch = watch  # on_change is not none (else a change is dropped, as the listener was told)
        self.unmasked = unmasked

    def fileno(self) -> int:
        return self.held.fileno()

    def rotated(self, seq: int) -> None:
        self.held.rotated(seq)

    def end(self, exit_status: int, duration_ms: int) -> None:
        self.held.end(exit_status, duration_ms)

    def poll(self) -> Revoked | Update | None:
        from runwrap.consumer.client import Changed, Revoked
        from runwrap.supervise import launch

        event = self.held.poll()
        if isinstance(event, Revoked):
            return launch.Revoked(event.reason)
        if not isinstance(event, Changed):
            return None
        try:
            return self._update(event) if self.watch else None
        finally:
            event.wipe()

    def _update(self, changed: Changed) -> Update:
        from runwrap.consumer.client import variables
        from runwrap.supervise.launch import Update

        request = self.request
        shares: list[Share] = []
        contents: dict[str, Secret] = {}
        try:
            for index, spec in enumerate(request.credentials):
                cred = changed.credentials.get(index)
                if cred is None:
                    names, inside = self.shares[index]
                    shares.append(({var: Secret(v.buffer) for var, v in names.items()},
                                   [Secret(v.buffer) for v in inside]))
                else:
                    shares.append((variables(spec, cred, request.source, optional=request.optional_fields),
                                   _file_share(request.source, spec, cred, contents)))
            injected = {var: value for names, _ in shares for var, value in names.items()}
            env = environment.build(self.parent, request.inherit, request.set, injected)
        except RunwrapError as exc:
            for value in (*contents.values(), *(v for names, inside in shares for v in (*names.values(), *inside))):
                value.wipe()
            return Update(changed.seq, error=exc.message)
        env.update(self.paths)
        differ = tuple(var for (old, _), (new, _) in zip(self.shares, shares, strict=True)
                       for var in sorted(old.keys() | new.keys()) if old.get(var) != new.get(var))
        self.shares = shares
        masked = [value for var, value in injected.items() if var not in self.unmasked]
        return Update(changed.seq, env, (*masked, *(v for _, inside in shares for v in inside)), contents, differ)


def _dry_run(profile: Profile, request: Request, command: list[str], parent: Mapping[str, str]) -> int:
    """Show what would happen, asking the listener for nothing."""
    argv = resolve(request, command, parent)
    out = sys.stdout
    out.write(f"profile: {profile.name} ({profile.path})\n")
    for spec in request.credentials:
        names = ", ".join(f"{var}={fld}" for var, fld in spec.env.items())
        out.write(f"would ask for {spec.query}: {names}\n")
        for var, file in spec.files.items():
            out.write(f"would make the file {var}: {_describe(file, parent)}\n")
    out.write(f"would run: {' '.join(argv)}\n")
    return 0



def _describe(file: FileSpec, parent: Mapping[str, str]) -> str:
    """A file as --dry-run shows it: where its content comes from, its mode, its kind; never the content."""
    made = f"field {file.field}" if file.field is not None else f"template of {', '.join(file.fields)}"
    if file.path:
        from runwrap.supervise.memfile import memory_base

        kind = f"a path in a private folder under {memory_base(parent)}"
    else:
        kind = "/dev/fd/N of a memory file"
    return f"{made}, mode 0{file.mode:03o}, {kind}"
