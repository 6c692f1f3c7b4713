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
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from runwrap import environment
from runwrap.errors import UsageError
from runwrap.profile.model import CredentialSpec, Profile
from runwrap.record import FrozenRecord, Record
from runwrap.secret import Secret

if TYPE_CHECKING:
    from runwrap.consumer.client import Channel

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
        "id",
        "keep_env",
        "mask",
        "prefix",
        "timeout",
    )

    def __init__(self, domain: str | None, id: str | None, env: list[str] | None = None,
                 env_all: bool = False, prefix: str = "AAC_", keep_env: list[str] | None = None,
                 connection: str | None = None, mask: bool = True, timeout: float | None = None,
                 command: list[str] | None = None) -> None:
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


def fetch_env(channel: Channel, request: Request, parent: Mapping[str, str], claim: Mapping[str, object]
              ) -> tuple[dict[str, str | Secret], tuple[Secret, ...]]:
    """The child's environment with the request's credentials in it, and those secrets (to wipe)."""
    from runwrap.consumer.client import fetch

    injected = fetch(channel, request.credentials, request.source, claim, optional=request.optional_fields)
    try:
        return environment.build(parent, request.inherit, request.set, injected), tuple(injected.values())
    except BaseException:
        for value in injected.values():
            value.wipe()
        raise


def claim_for(argv0: str, request: Request) -> dict[str, object]:
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
    if args.env_all:
        mapping = environment.env_all(args.prefix)
    elif args.env:
        mapping = environment.parse_env_flags(args.env)
    else:
        raise UsageError("name the variables: --env VAR=FIELD (repeatable) or --env-all [--prefix AAC_]")
    request = Request((CredentialSpec(query=query, env=mapping, line=0),), source="<command line>",
                      inherit=(*environment.DEFAULT_INHERIT, *args.keep_env), optional_fields=args.env_all)
    return launch(request, args.command, parent, connection=args.connection, mask=args.mask,
                  timeout=args.timeout, kill_grace=None)


def launch(request: Request, command: list[str], parent: Mapping[str, str], *, connection: str | None,
           mask: bool, timeout: float | None, kill_grace: float | None) -> int:
    """Resolve the command, fetch, hold the lease, and supervise the child; its exit status.

    In this order, so a missing command never fetches a secret and a failed fetch never starts a
    child; whatever was fetched is wiped on every way out.
    """
    from runwrap.consumer.client import Endpoint
    from runwrap.paths import config_dir
    from runwrap.supervise import supervisor

    argv = resolve(request, command, parent)
    channel = Endpoint.pick_in(config_dir(parent), connection).open()
    secrets: tuple[Secret, ...] = ()
    try:
        claim = claim_for(command[0], request)
        env, secrets = fetch_env(channel, request, parent, claim)
        lease = channel.hold(claim)
    except BaseException:
        for value in secrets:
            value.wipe()
        channel.close()
        raise
    child = Child(argv, env, secrets)
    gc.enable()  # off while starting (runwrap.__main__); a long run must collect what it makes
    return supervisor.run(supervisor.Launch(
        argv=child.argv, env=child.env, secrets=child.secrets, mask=mask, timeout=timeout,
        kill_grace=5.0 if kill_grace is None else kill_grace, lease=lease))


def _dry_run(profile: Profile, request: Request, command: list[str], parent: Mapping[str, str]) -> int:
    """Show what would happen, asking the listener for nothing."""
    argv = resolve(request, command, parent)
    out = sys.stdout
    out.write(f"profile: {profile.name} ({profile.path})\n")
    for spec in request.credentials:
        names = ", ".join(f"{var}={fld}" for var, fld in spec.env.items())
        out.write(f"would ask for {spec.query}: {names}\n")
    out.write(f"would run: {' '.join(argv)}\n")
    return 0
