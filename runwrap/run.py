"""The exec path: `runwrap PROFILE -- cmd`, `runwrap exec PROFILE -- cmd` and `runwrap run ...`.

The library half, with plain arguments (`ExecArgs`; `run`'s `RunArgs` in runwrap.run_flags);
runwrap.cli.exec_args parses the command line into them. This is the hot path (shebang lines,
Makefile recipes), so it never imports typer, and what only some launches reach loads where it is
used: files and changes (runwrap.shares), `--dry-run` (runwrap.dry_run), the `run` form. Order
matters: harden the process, read and check the profile, resolve the command, and only then ask
the listener — so a broken profile or a missing command never fetches a secret, and a failed fetch
never starts a child.
"""

from __future__ import annotations

import gc
import os

from runwrap import environment
from runwrap.errors import UsageError
from runwrap.record import FrozenRecord, Record
from runwrap.secret import Secret

TYPE_CHECKING = False  # not typing's: the exec path imports this module
if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence

    from runwrap.consumer.changes import Changed
    from runwrap.consumer.client import Channel, Claim, HeldLease
    from runwrap.credential import Credential
    from runwrap.profile.model import CredentialSpec, Profile
    from runwrap.shares import Share
    from runwrap.supervise.fileset import FileSet
    from runwrap.supervise.launch import OnChange, Revoked, Update


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
        if not spec.files:
            inside.append([])
            return
        from runwrap.shares import file_share  # only an entry with files: (or `run --file`)

        inside.append(file_share(request.source, spec, cred, contents))

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
        from runwrap import dry_run  # only with --dry-run

        return dry_run.show(profile, request.credentials, resolve(request, args.command, parent), parent)
    return launch(request, args.command, parent, connection=args.connection or profile.connection,
                  mask=profile.mask if args.mask is None else args.mask,
                  timeout=args.timeout if args.timeout is not None else profile.timeout,
                  kill_grace=profile.kill_grace, rate_wait=args.rate_wait, mask_hex=args.mask_hex or profile.mask_hex,
                  on_change=profile.on_change)


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
    from runwrap import code_cache

    code_cache.resume()  # from the code bundle, when the launch has one
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
    child's values (`Update`, made by runwrap.shares.update)."""

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
        from runwrap.consumer.client import Revoked
        from runwrap.supervise import launch

        event = self.held.poll()
        if isinstance(event, Revoked):
            return launch.Revoked(event.reason)
        if event is None:
            return None
        try:
            return self._update(event) if self.watch else None
        finally:
            event.wipe()

    def _update(self, changed: Changed) -> Update:
        from runwrap.shares import update  # only a run with on_change gets here

        request = self.request
        made, shares = update(changed, request.credentials, self.shares, source=request.source,
                              optional=request.optional_fields, parent=self.parent, inherit=request.inherit,
                              set=request.set, paths=self.paths, unmasked=self.unmasked)
        if shares is not None:
            self.shares = shares
        return made
