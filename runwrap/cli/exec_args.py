"""The exec form's command line: `runwrap PROFILE [flags] -- CMD [ARG...]` and `runwrap exec ...`.

Parsed by hand, not by typer: this runs in every shebang line and Makefile recipe, and the CLI
framework costs more to import than the rest of the exec path. `main` parses, calls
`runwrap.run.exec_profile` and hands any error to `runwrap.errors.report`; `runwrap.__main__` and
the typer app's `exec` command both call it.
"""

from __future__ import annotations

import sys

from runwrap import run
from runwrap.errors import EXEC, UsageError, report

TYPE_CHECKING = False  # not typing's: the exec path imports this module
if TYPE_CHECKING:
    from collections.abc import Sequence

# Words that are commands, not profile names. A profile with one of these names is run with
# `runwrap exec NAME -- cmd` or by its path.
COMMANDS = frozenset({
    "exec", "run", "connect", "listen", "invite", "pair", "connections", "peers", "profiles",
    "audit", "doctor", "help",
})

USAGE = ("usage: runwrap PROFILE [--connection NAME] [--no-mask] [--mask-hex] [--timeout DUR] [--rate-wait DUR]"
         " [--dry-run] -- CMD [ARG...]")
SEE_HELP = "see `runwrap exec --help`"
HELP = f"""{USAGE}
       runwrap exec PROFILE ... -- CMD [ARG...]

Run CMD with exactly the credentials PROFILE names, fetched from a paired listener, masked in its
output and supervised. PROFILE is a file (a path ending in .yaml or .yml, or containing a /) or a
name looked up in $RUNWRAP_PROFILES, ./profiles/ and ~/.config/runwrap/profiles/.

Options (before `--`):
  --connection NAME  the paired listener to ask (default: the profile's, else the only one)
  --no-mask          do not mask the injected values in CMD's output
  --mask-hex         also mask their hex forms (xxd, od; slower, see README Masking)
  --timeout DUR      stop CMD after DUR (30s, 5m, 1h30m; at most 24d) and exit 124
  --rate-wait DUR    wait up to DUR (at most 50s) when the listener's rate limit says
                     when to retry (default: RUNWRAP_RATE_WAIT, else 5s)
  --dry-run          show what would be asked for and run, and ask for nothing
  --debug            show the traceback of an error
  -h, --help         show this help

Exit status: CMD's (a CMD killed by signal N ends runwrap by the same signal); 124 timed out,
125 runwrap's own error, 126 CMD cannot be executed, 127 CMD not found.
"""


def is_exec_form(args: Sequence[str]) -> bool:
    """`runwrap exec ...` or `runwrap PROFILE ...`: a first word that is neither a command nor an option."""
    first = args[0] if args else ""
    return first == "exec" or (bool(first) and first not in COMMANDS and not first.startswith("-"))


def parse(argv: Sequence[str]) -> run.ExecArgs:
    """PROFILE and flags up to `--`, then the command. Flags may come before or after PROFILE."""
    from runwrap.consumer.client import parse_rate_wait
    from runwrap.durations import check_wait, parse_duration

    args = list(argv)
    if "--" not in args:
        raise UsageError(f"missing `--` before the command; {SEE_HELP}")
    split = args.index("--")
    head, command = args[:split], args[split + 1 :]
    if not command:
        raise UsageError(f"no command after `--`; {SEE_HELP}")
    profile: str | None = None
    parsed = run.ExecArgs(profile="", command=command)
    i = 0
    while i < len(head):
        word = head[i]
        name, eq, inline = word.partition("=")
        if name in ("--connection", "--timeout", "--rate-wait"):
            value = inline if eq else (head[i + 1] if i + 1 < len(head) else None)
            if value is None:
                raise UsageError(f"{name} needs a value; {SEE_HELP}")
            i += 0 if eq else 1
            if name == "--connection":
                parsed.connection = value
            else:
                try:
                    if name == "--timeout":
                        parsed.timeout = check_wait(parse_duration(value), value)
                    else:
                        parsed.rate_wait = parse_rate_wait(value)
                except ValueError as exc:
                    raise UsageError(f"{name}: {exc}") from None
        elif word == "--no-mask":
            parsed.mask = False
        elif word == "--mask-hex":
            parsed.mask_hex = True
        elif word == "--dry-run":
            parsed.dry_run = True
        elif word.startswith("-"):
            raise UsageError(f"unknown option {word}; {SEE_HELP}")
        elif profile is None:
            profile = word
        else:
            raise UsageError(f"unexpected argument {word!r} before `--`; {SEE_HELP}")
        i += 1
    if profile is None:
        raise UsageError(f"no profile named; {SEE_HELP}")
    parsed.profile = profile
    return parsed


def main(args: Sequence[str], debug: bool = False) -> int:
    """Run the exec form `args` (after `exec`, if it was given) and return runwrap's exit status."""
    head = list(args[: list(args).index("--")] if "--" in args else args)
    if "-h" in head or "--help" in head:
        sys.stdout.write(HELP)
        return 0
    try:
        return run.exec_profile(parse(args))
    except (Exception, KeyboardInterrupt) as exc:
        return report(exc, EXEC, debug=debug)
