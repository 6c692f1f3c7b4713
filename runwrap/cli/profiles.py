"""`runwrap profiles list|show|check`: find, show and check profiles (runwrap.profile does the work)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from runwrap.cli.tables import echo_table

if TYPE_CHECKING:
    from runwrap.profile.model import Profile

profiles_app = typer.Typer(help="Find, show and check profiles.", no_args_is_help=True)


@profiles_app.command("list")
def profiles_list() -> None:
    """Every profile runwrap can find, first hit per name."""
    import os

    from runwrap.profile import lookup as profiles

    rows = [[name, str(path), desc] for name, path, desc in profiles.list_profiles(os.environ, Path.cwd())]
    echo_table(["NAME", "PATH", "DESCRIPTION"], rows, empty="no profiles found")


def _find_profile(name: str) -> Profile:
    import os

    from runwrap.profile import lookup as profiles

    return profiles.find(name, environ=os.environ, cwd=Path.cwd())


@profiles_app.command("show")
def profiles_show(name: Annotated[str, typer.Argument(metavar="NAME", hidden=True)]) -> None:
    """What profile NAME asks for and what its child's environment will be."""
    from runwrap.environment import DEFAULT_INHERIT

    prof = _find_profile(name)
    typer.echo(f"profile: {prof.name}\npath: {prof.path}")
    if prof.description:
        typer.echo(f"description: {prof.description}")
    typer.echo(f"connection: {prof.connection or '(default)'}")
    for spec in prof.credentials:
        typer.echo(f"credential: {spec.query}: " + ", ".join(f"{v}={f}" for v, f in spec.env.items()))
    typer.echo("inherit: " + " ".join(prof.inherit if prof.inherit is not None else DEFAULT_INHERIT))
    if prof.set:
        typer.echo("set: " + " ".join(sorted(prof.set)))
    typer.echo(f"mask: {'yes' if prof.mask else 'no'}")
    if prof.timeout:
        typer.echo(f"timeout: {prof.timeout:g}s")
    if prof.kill_grace is not None:
        typer.echo(f"kill_grace: {prof.kill_grace:g}s")


@profiles_app.command("check")
def profiles_check(name: Annotated[str, typer.Argument(metavar="NAME|FILE", hidden=True)]) -> None:
    """Validate a profile by NAME or FILE; exit 1 with FILE:LINE and the fix if it is wrong."""
    prof = _find_profile(name)
    typer.echo(f"ok: {prof.path} ({len(prof.credentials)} credential(s))")
