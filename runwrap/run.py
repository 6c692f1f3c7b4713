"""The exec path: `runwrap PROFILE -- cmd`, `runwrap exec PROFILE -- cmd` and `runwrap run ...`.

The library half, with plain arguments (`ExecArgs`, `RunArgs`); runwrap.cli.exec_args parses the
command line into them. This is the hot path (shebang lines, Makefile recipes), so it never imports
typer. Order matters: harden the process, read and check the profile, resolve the command,
and only then ask the listener — so a broken profile or a missing command never fetches a secret,
and a failed fetch never starts a child.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from runwrap.errors import UsageError
from runwrap.record import Record


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


def provenance(command: Sequence[str], profile: str) -> dict[str, object]:
    from runwrap.consumer.client import default_provenance

    return default_provenance(command[0], profile)


def exec_profile(args: ExecArgs, environ: Mapping[str, str] | None = None) -> int:
    from runwrap.profile import lookup as profiles
    from runwrap.supervise.hardening import harden

    harden()
    parent = dict(os.environ if environ is None else environ)
    profile = profiles.find(args.profile, environ=parent, cwd=Path.cwd())
    mask = profile.mask if args.mask is None else args.mask
    timeout = args.timeout if args.timeout is not None else profile.timeout
    if args.dry_run:
        return _dry_run(profile, args.command, parent)
    return _launch(
        credentials=profile, inherit=profile.inherit, set_=profile.set, parent=parent,
        command=args.command, connection=args.connection or profile.connection, mask=mask,
        timeout=timeout, kill_grace=profile.kill_grace, profile_name=profile.name,
    )


def exec_run(args: RunArgs, environ: Mapping[str, str] | None = None) -> int:
    from runwrap import environment
    from runwrap.credential import Query
    from runwrap.profile.lookup import CredentialSpec
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
    spec = CredentialSpec(query=query, env=mapping, line=0)
    inherit = tuple(environment.DEFAULT_INHERIT) + tuple(args.keep_env)
    return _launch(
        credentials=_Synthetic((spec,)), inherit=inherit, set_={}, parent=parent, command=args.command,
        connection=args.connection, mask=args.mask, timeout=args.timeout, kill_grace=None,
        profile_name="", optional_fields=args.env_all,
    )


class _Synthetic:
    """The one-item "profile" of `runwrap run`."""

    def __init__(self, credentials: tuple[object, ...]) -> None:
        self.credentials = credentials
        self.path = Path("<command line>")
        self.name = ""


def _launch(*, credentials: object, inherit: Sequence[str] | None, set_: Mapping[str, str],
            parent: Mapping[str, str], command: list[str], connection: str | None, mask: bool,
            timeout: float | None, kill_grace: float | None, profile_name: str,
            optional_fields: bool = False) -> int:
    from runwrap import environment
    from runwrap.api import Client
    from runwrap.consumer.client import fetch_profile
    from runwrap.secret import Secret
    from runwrap.supervise import supervisor
    from runwrap.supervise.command import resolve_command

    child_path = _child_path(inherit, set_, parent)
    resolved = resolve_command(command[0], child_path)
    client = Client(connection)
    injected: dict[str, Secret] = {}
    try:
        channel = client.open()
        claim = provenance(command, profile_name)
        injected = fetch_profile(channel, credentials, claim, optional=optional_fields)
        env = environment.build(parent, inherit, set_, injected)
        lease = channel.hold(claim)
    except BaseException:
        for value in injected.values():
            value.wipe()
        client.close()
        raise
    launch = supervisor.Launch(
        argv=[resolved, *command[1:]], env=env, mask_values=list(injected.values()), mask=mask,
        timeout=timeout, kill_grace=5.0 if kill_grace is None else kill_grace, lease=lease,
        wipe=list(injected.values()),
    )
    return supervisor.run(launch)


def _child_path(inherit: Sequence[str] | None, set_: Mapping[str, str], parent: Mapping[str, str]) -> str | None:
    """The PATH the child will see, to resolve the command the way its exec would."""
    from fnmatch import fnmatchcase

    from runwrap.environment import DEFAULT_INHERIT

    if "PATH" in set_:
        return set_["PATH"]
    patterns = DEFAULT_INHERIT if inherit is None else inherit
    if any(fnmatchcase("PATH", p) for p in patterns):
        return parent.get("PATH")
    return None


def _dry_run(profile: object, command: list[str], parent: Mapping[str, str]) -> int:
    """Show what would happen, asking the listener for nothing."""
    from runwrap.supervise.command import resolve_command

    child_path = _child_path(profile.inherit, profile.set, parent)  # type: ignore[attr-defined]
    resolved = resolve_command(command[0], child_path)
    out = sys.stdout
    out.write(f"profile: {profile.name} ({profile.path})\n")  # type: ignore[attr-defined]
    for spec in profile.credentials:  # type: ignore[attr-defined]
        names = ", ".join(f"{var}={fld}" for var, fld in spec.env.items())
        out.write(f"would ask for {spec.query}: {names}\n")
    out.write(f"would run: {resolved} {' '.join(command[1:])}\n".rstrip() + "\n")
    return 0

