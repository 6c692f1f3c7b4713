"""The `runwrap` console script.

`runwrap PROFILE -- cmd` (and `exec`, `run`) go down the lean exec path in `runwrap.run`, which
never imports typer: it runs in every shebang line and Makefile recipe. Everything else goes to the
typer application in `runwrap.cli.app`. `main(argv) -> int` is callable from tests.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from runwrap.errors import EXIT_RUNWRAP, RunwrapError

# Words that are commands, not profile names. A profile with one of these names is run with
# `runwrap exec NAME -- cmd` or by its path.
COMMANDS = frozenset({
    "exec", "run", "connect", "listen", "invite", "pair", "connections", "peers", "profiles",
    "audit", "doctor", "help",
})


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args[: args.index("--")] if "--" in args else "--debug" in args
    if debug:
        args.remove("--debug")
    completing = any(k.startswith("_RUNWRAP_COMPLETE") for k in os.environ)
    first = args[0] if args else ""
    if not completing and first and (first == "exec" or (first not in COMMANDS and not first.startswith("-"))):
        return _exec(args[1:] if first == "exec" else args, debug)
    from runwrap.cli.app import run_app

    return run_app(args, debug=debug)


_exec_path_ran = False


def _exec(args: list[str], debug: bool) -> int:
    global _exec_path_ran
    from runwrap import run as launch

    _exec_path_ran = True

    try:
        if args and args[0] in ("-h", "--help"):
            print(launch.USAGE)
            return 0
        return launch.exec_profile(launch.parse_exec_args(args))
    except RunwrapError as exc:
        if debug:
            raise
        launch.report(exc)
        return exc.exit_status
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: say so in one line; --debug shows the traceback
        if debug:
            raise
        sys.stderr.write(f"runwrap: internal error ({type(exc).__name__}); run again with --debug\n")
        return EXIT_RUNWRAP


def entry() -> None:
    status = main()
    if _exec_path_ran:
        # Nothing is left to clean up once the child has ended and runwrap's copies are wiped; skip
        # the interpreter's teardown of ~190 modules (~9 ms on every `runwrap PROFILE -- cmd`).
        from runwrap.supervise.signals import flush_stdio

        flush_stdio()
        os._exit(status)
    sys.exit(status)


if __name__ == "__main__":
    entry()
