"""`runwrap run`, aac's spelling: one item, its variables and files named by flags.

The typer app parses the command line into `RunArgs`; `exec_run` turns them into a `run.Request`
and launches it as `runwrap PROFILE -- cmd` does. Apart from runwrap.run so the common launch
(`runwrap PROFILE -- cmd`) never loads the flag forms' checks.
"""

from __future__ import annotations

import os

from runwrap import environment
from runwrap.credential import FIELDS, is_field_name
from runwrap.environment import is_valid_name, quote_name
from runwrap.errors import UsageError
from runwrap.profile.model import CredentialSpec, FileSpec
from runwrap.record import Record
from runwrap.run import Request, launch

TYPE_CHECKING = False  # not typing's: keep with runwrap.run's imports
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

# The fields that name an item rather than open it. `run --env-all` injects every field without the
# user naming one, so these are not masked there: masking `github.com` garbles every URL and host
# the child prints, and hides nothing a secret needs. A field the user maps by name (a profile,
# `--env VAR=uri`) is masked whatever it is, as SPEC says; the README's Masking bullet says why.
IDENTIFIERS = frozenset({"uri", "domain", "credential_id"})


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
        mapping = env_all(args.prefix)
        unmasked = [name for name, field in mapping.items() if field in IDENTIFIERS]
    elif args.env or args.files:
        mapping = parse_env_flags(args.env)
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
    files: dict[str, FileSpec] = {}
    for flag in flags:
        name, sep, field = flag.partition("=")
        if not sep:
            raise UsageError(f"--file {quote_name(flag)} has no field"
                             " — write VAR=FIELD, e.g. --file SSH_KEY=notes")
        if not is_valid_name(name):
            raise UsageError(f"--file: {quote_name(name)} is not a valid variable name"
                             " — use letters, digits and _, not starting with a digit")
        if not is_field_name(field):
            raise UsageError(f"--file {name}: {quote_name(field)} is not a field name"
                             " — name an item key such as notes or password")
        if name in files or name in taken:
            raise UsageError(f"--file: {name} is already given — keep one")
        files[name] = FileSpec(field=field)
    return files


def env_all(prefix: str = "AAC_") -> dict[str, str]:
    """aac's `--env-all`: every field as PREFIX + its name in capitals (AAC_USERNAME: username, ...)."""
    mapping = {f"{prefix}{field.upper()}": field for field in FIELDS}
    if not all(is_valid_name(name) for name in mapping):
        raise UsageError(
            f"--prefix {quote_name(prefix)} does not make valid variable names"
            " — use letters, digits and _, not starting with a digit (e.g. AAC_)"
        )
    return mapping


def parse_env_flags(flags: Sequence[str]) -> dict[str, str]:
    """`--env VAR=FIELD ...` as aac takes them, to {VAR: FIELD}; UsageError for a bad one."""
    mapping: dict[str, str] = {}
    valid = ", ".join(FIELDS)
    for flag in flags:
        name, sep, field = flag.partition("=")
        if not sep:
            raise UsageError(
                f"--env {quote_name(flag)} has no field — write VAR=FIELD, e.g. --env GH_TOKEN=password"
            )
        if not is_valid_name(name):
            raise UsageError(
                f"--env: {quote_name(name)} is not a valid variable name"
                " — use letters, digits and _, not starting with a digit"
            )
        if not is_field_name(field):
            raise UsageError(f"--env {name}: {quote_name(field)} is not a field name — use one of: {valid},"
                             " or a key the item has (api_key)")
        if name in mapping:
            raise UsageError(f"--env: {name} is given twice — keep one")
        mapping[name] = field
    return mapping
