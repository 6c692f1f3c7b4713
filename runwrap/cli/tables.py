"""Tables as the CLI prints them: columns padded to the widest cell, one row a line."""

from __future__ import annotations

import typer


def echo_table(header: list[str], rows: list[list[str]], *, empty: str) -> None:
    if not rows:
        typer.echo(empty)
        return
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        typer.echo("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
