"""The `runwrap` console script: the entry, nothing else.

`runwrap PROFILE -- cmd` and `runwrap exec ...` go down the lean exec path (runwrap.cli.exec_args,
then runwrap.run), which never imports typer: it runs in every shebang line and Makefile recipe.
Everything else goes to the typer application in `runwrap.cli.app`. Both report errors through
runwrap.errors. `main(argv) -> int` is callable from tests.
"""

from __future__ import annotations

import gc
import os
import sys

TYPE_CHECKING = False  # not typing's: this module starts every run
if TYPE_CHECKING:
    from collections.abc import Sequence

_exec_path_ran = False


def main(argv: Sequence[str] | None = None) -> int:
    global _exec_path_ran
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args[: args.index("--")] if "--" in args else "--debug" in args
    if debug:
        args.remove("--debug")
    completing = any(k.startswith("_RUNWRAP_COMPLETE") for k in os.environ)
    # Starting up makes ~100k objects and no garbage, so the collector is off while runwrap's
    # modules load (the collections they would trigger cost ~1 ms); run.launch turns it back on
    # before it supervises the child.
    gc.disable()
    try:
        from runwrap.cli import exec_args

        if not completing and exec_args.is_exec_form(args):
            _exec_path_ran = True
            return exec_args.main(args[1:] if args[0] == "exec" else args, debug)
    finally:
        gc.enable()
    from runwrap.cli.app import run_app

    return run_app(args, debug=debug)


def entry() -> None:
    recorder = None
    if "--" in sys.argv:  # the exec form may follow: its modules from one file (runwrap.code_cache)
        from runwrap import code_cache

        gc.disable()  # as in main: loading makes no garbage
        recorder = code_cache.load(os.environ)
    status = main()
    if _exec_path_ran:
        # Nothing is left to clean up once the child has ended and runwrap's copies are wiped; skip
        # the interpreter's teardown of ~190 modules (~9 ms on every `runwrap PROFILE -- cmd`).
        from runwrap.supervise.signals import flush_stdio

        flush_stdio()
        if recorder is not None:
            recorder.write()
        os._exit(status)
    if recorder is not None:
        recorder.stop()
    sys.exit(status)


if __name__ == "__main__":
    entry()
