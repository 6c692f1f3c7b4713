"""Shell completion: the names a user would otherwise look up (profiles, providers, connections, peers).

`runwrap <TAB>` offers the commands and every profile name on the profile search path (the exec
form `runwrap PROFILE -- cmd`); `runwrap exec <TAB>` and `profiles show|check <TAB>` the profile
names; `--provider` the provider names; `--connection` and `connections remove` the paired
listeners; `peers revoke|scope` the peers. Completion runs the typer app (runwrap.__main__ sends
every `_RUNWRAP_COMPLETE` call there), so none of this is on the exec path.

typer spells the instruction `complete_bash` (what `--install-completion` writes); click's own
spelling, `bash_complete`, is accepted too (`normalize_instruction`), so either protocol works.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from typer._click.shell_completion import CompletionItem
from typer.core import TyperCommand, TyperGroup

COMPLETE_VAR = "_RUNWRAP_COMPLETE"
SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")
# The exec form's flags (runwrap.cli.exec_args), offered after `runwrap exec`.
EXEC_FLAGS = ("--connection", "--no-mask", "--timeout", "--dry-run", "--help")


def normalize_instruction(environ: MutableMapping[str, str]) -> None:
    """click's `SHELL_complete` / `SHELL_source` as typer's `complete_SHELL` / `source_SHELL`."""
    shell, _, action = environ.get(COMPLETE_VAR, "").partition("_")
    if shell in SHELLS and action in ("complete", "source"):
        environ[COMPLETE_VAR] = f"{action}_{shell}"


def profile_names(incomplete: str) -> list[str]:
    from runwrap.profile.lookup import reachable

    try:
        cwd = Path.cwd()
    except OSError:  # the current folder was removed: only the absolute folders are searched
        cwd = Path("/")
    return sorted(name for name in reachable(os.environ, cwd) if name.startswith(incomplete))


def provider_names(incomplete: str) -> list[str]:
    from runwrap.providers import available

    return [name for name in available() if name.startswith(incomplete)]


def connection_names(incomplete: str) -> list[str]:
    from runwrap.consumer.connections import Connections
    from runwrap.paths import layout

    try:
        return sorted(n for n in Connections(layout().connections).by_name if n.startswith(incomplete))
    except Exception:  # a broken file must not break the shell; `connections list` says what is wrong
        return []


def peer_names(incomplete: str) -> list[str]:
    from runwrap.listener.peers import Peers
    from runwrap.paths import layout

    try:
        return sorted(n for n in Peers(layout().peers).by_name if n.startswith(incomplete))
    except Exception:  # as above: `peers list` reports a broken file
        return []


class RootGroup(TyperGroup):
    """The app's group: completes the commands, then the profile names (`runwrap deploy -- ...`)."""

    def shell_complete(self, ctx: Any, incomplete: str) -> list[CompletionItem]:
        results: list[CompletionItem] = super().shell_complete(ctx, incomplete)
        if not incomplete.startswith("-"):
            results += [CompletionItem(name, help="profile") for name in profile_names(incomplete)
                        if name not in self.commands]
        return results


class ExecCommand(TyperCommand):
    """`runwrap exec`: its arguments are parsed by hand (runwrap.cli.exec_args), so it completes them
    here: the profile, the exec flags, a connection after --connection; nothing after `--`."""

    def shell_complete(self, ctx: Any, incomplete: str) -> list[CompletionItem]:
        words = list(ctx.args)
        if "--" in words:
            return []
        if words and words[-1] == "--connection":
            return [CompletionItem(name) for name in connection_names(incomplete)]
        if words and words[-1] == "--timeout":
            return []  # a duration
        if incomplete.startswith("-"):
            return [CompletionItem(flag) for flag in EXEC_FLAGS if flag.startswith(incomplete)]
        values = {i + 1 for i, w in enumerate(words) if w in ("--connection", "--timeout")}
        if any(not w.startswith("-") and i not in values for i, w in enumerate(words)):
            return []  # the profile is named; what follows is `--` and the command
        return [CompletionItem(name, help="profile") for name in profile_names(incomplete)]
