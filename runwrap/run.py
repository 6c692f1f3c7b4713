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
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING

from runwrap import environment
from runwrap.errors import RunwrapError, UsageError
from runwrap.profile.model import CredentialSpec, FileSpec, Profile
from runwrap.record import FrozenRecord, Record
from runwrap.secret import Secret

if TYPE_CHECKING:
    from runwrap.consumer.client import Channel, Claim
    from runwrap.credential import Credential
    from runwrap.supervise.memfile import FileSet

# The fields that name an item rather than open it. `run --env-all` injects every field without the
# user naming one, so these are not masked there: masking `github.com` garbles every URL and host
# the child prints, and hides nothing a secret needs. A field the user maps by name (a profile,
# `--env VAR=uri`) is masked whatever it is, as SPEC says; the README's Masking bullet says why.
IDENTIFIERS = frozenset({"uri", "domain", "credential_id"})


class ExecArgs(Record):
    """`runwrap PROFILE [flags] -- cmd` and `runwrap exec ...`."""

    __slots__ = ("command", "connection", "dry_run", "mask", "profile", "timeout")

    def __init__(self, profile: str, command: list[str], connection: str | None = None, mask: bool | None = None,
                 timeout: float | None = None, dry_run: bool = False) -> None:
        self.profile = profile
        self.command = command
        self.connection = connection
        self.mask = mask
        self.timeout = timeout
        self.dry_run = dry_run


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
        "prefix",
        "timeout",
    )

    def __init__(self, domain: str | None, id: str | None, env: list[str] | None = None,
                 env_all: bool = False, prefix: str = "AAC_", keep_env: list[str] | None = None,
                 connection: str | None = None, mask: bool = True, timeout: float | None = None,
                 command: list[str] | None = None, files: list[str] | None = None) -> None:
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
              files: FileSet | None = None) -> tuple[dict[str, str | Secret], tuple[Secret, ...]]:
    """The child's environment with the request's credentials in it, and those secrets (to wipe).

    The request's `files:` are made into `files`, their variables set to their paths; the values
    inside them are among the secrets returned, so they are masked and wiped like the others.
    Without `files` (`Client.env`, which hands back variables only) a request with files is refused.
    """
    from runwrap.consumer.client import fetch

    if files is None and any(spec.files for spec in request.credentials):
        raise UsageError(f"{request.source} has files:, which only `runwrap PROFILE -- cmd` can make"
                         " — run the command through runwrap instead")
    contents: dict[str, tuple[FileSpec, Secret]] = {}
    inside: list[Secret] = []  # the values in the files, for the mask

    def take(spec: CredentialSpec, cred: Credential) -> None:
        for var, file in spec.files.items():
            contents[var] = (file, _content(request.source, spec, var, file, cred))
        inside.extend(Secret(cred[name].buffer) for name in {n for f in spec.files.values() for n in f.fields})

    injected: dict[str, Secret] = {}
    try:
        injected = fetch(channel, request.credentials, request.source, claim, optional=request.optional_fields,
                         on_item=take)
        env = environment.build(parent, request.inherit, request.set, injected)
        if files is not None:
            for var, (file, content) in contents.items():
                env[var] = files.add(var, content, file.mode, path=file.path).path
                content.wipe()  # it lives in the file now
        return env, (*injected.values(), *inside)
    except BaseException:
        for value in (*injected.values(), *inside, *(content for _, content in contents.values())):
            value.wipe()
        raise


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
                  kill_grace=profile.kill_grace)


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
    request = Request((CredentialSpec(query=query, env=mapping, line=0, files=files),), source="<command line>",
                      inherit=(*environment.DEFAULT_INHERIT, *args.keep_env), optional_fields=args.env_all)
    return launch(request, args.command, parent, connection=args.connection, mask=args.mask,
                  timeout=args.timeout, kill_grace=None, unmasked=unmasked)


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
           mask: bool, timeout: float | None, kill_grace: float | None, unmasked: Collection[str] = ()) -> int:
    """Resolve the command, fetch, hold the lease, and supervise the child; its exit status.

    In this order, so a missing command never fetches a secret and a failed fetch never starts a
    child; whatever was fetched is wiped on every way out. Every injected value is masked except
    the variables named in `unmasked` (identifiers, see IDENTIFIERS); all are wiped.
    """
    from runwrap.consumer.client import Endpoint
    from runwrap.paths import config_dir
    from runwrap.supervise import supervisor
    from runwrap.supervise.memfile import FileSet

    argv = resolve(request, command, parent)
    channel = Endpoint.pick_in(config_dir(parent), connection).open()
    secrets: tuple[Secret, ...] = ()
    files = FileSet(parent)
    try:
        if any(file.path for spec in request.credentials for file in spec.files.values()):
            files.make_folder()
        claim = claim_for(command[0], request)
        env, secrets = fetch_env(channel, request, parent, claim, files)
        lease = channel.hold(claim)
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
            argv=child.argv, env=child.env, secrets=masked, mask=mask, timeout=timeout,
            kill_grace=5.0 if kill_grace is None else kill_grace, lease=lease, files=files))
    finally:
        files.remove()  # the supervisor removes them once the child's tree is gone; this is for its errors


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
