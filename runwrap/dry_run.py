"""`runwrap PROFILE --dry-run -- cmd`: show what would be asked for and run, asking the listener for nothing.

Apart from runwrap.run so a launch that runs its command never loads it.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # not typing's: runwrap.run imports this module where it is used
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from runwrap.profile.model import CredentialSpec, FileSpec, Profile


def show(profile: Profile, credentials: Sequence[CredentialSpec], argv: Sequence[str],
         parent: Mapping[str, str]) -> int:
    """What `profile` would ask for, the files it would make and the command (resolved) it would run."""
    out = sys.stdout
    out.write(f"profile: {profile.name} ({profile.path})\n")
    for spec in credentials:
        names = ", ".join(f"{var}={fld}" for var, fld in spec.env.items())
        out.write(f"would ask for {spec.query}: {names}\n")
        for var, file in spec.files.items():
            out.write(f"would make the file {var}: {_describe(file, parent)}\n")
    out.write(f"would run: {' '.join(argv)}\n")
    return 0


def _describe(file: FileSpec, parent: Mapping[str, str]) -> str:
    """A file as --dry-run shows it: where its content comes from, its mode, its kind; never the content."""
    made = f"field {file.field}" if file.field is not None else f"template of {', '.join(file.fields)}"
    if file.path:
        from runwrap.supervise.memfile import memory_base

        kind = f"a path in a private folder under {memory_base(parent)}"
    else:
        kind = "/dev/fd/N of a memory file"
    return f"{made}, mode 0{file.mode:03o}, {kind}"
