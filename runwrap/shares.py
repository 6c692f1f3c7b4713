"""What one credential entry puts in the child beyond its variables, and the next values a change makes.

An entry's `files:` hold one field or a template of several (their contents, and the values inside
them to mask); a change the listener pushes while the child runs (on_change is not none) becomes the
supervisor's next `Update`. Apart from runwrap.run so the common launch (env credentials only,
on_change none) never loads them.
"""

from __future__ import annotations

from runwrap import environment
from runwrap.errors import RunwrapError
from runwrap.secret import Secret

TYPE_CHECKING = False  # not typing's: runwrap.run imports this module where it is used
if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

    from runwrap.consumer.changes import Changed
    from runwrap.credential import Credential
    from runwrap.profile.model import CredentialSpec, FileSpec
    from runwrap.supervise.launch import Update

# One credential entry's values in the child: its variables, and the values inside its files (masked).
Share = tuple[dict[str, Secret], list[Secret]]


def file_share(source: str, spec: CredentialSpec, cred: Credential, contents: dict[str, Secret]) -> list[Secret]:
    """What one entry's files hold, into `contents` (by variable); the values inside them, to mask."""
    for var, file in spec.files.items():
        contents[var] = _content(source, spec, var, file, cred)
    return [Secret(cred[name].buffer) for name in sorted({n for f in spec.files.values() for n in f.fields})]


def _content(source: str, spec: CredentialSpec, var: str, file: FileSpec, cred: Credential) -> Secret:
    """What the file `var` holds: one field's value, or the template with the fields put in."""
    from runwrap.profile.files import parse_template, render

    for name in file.fields:
        if name not in cred:
            has = f" (it has: {', '.join(cred.available)})" if cred.available else ""
            raise RunwrapError(f"{source}:{file.line or spec.line}: the item for {spec.query} has no {name}"
                               f" value{has}; remove the file {var} or pick another field")
    if file.field is not None:
        return Secret(cred[file.field].buffer)
    return render(parse_template(file.template or ""), cred)


def update(changed: Changed, specs: tuple[CredentialSpec, ...], old: list[Share], *, source: str, optional: bool,
           parent: Mapping[str, str], inherit: tuple[str, ...] | None, set: Mapping[str, str],
           paths: Mapping[str, str], unmasked: Collection[str]) -> tuple[Update, list[Share] | None]:
    """The child's next values after `changed`, through the first fetch's functions (`client.variables`,
    `file_share`, `environment.build`), the entries it does not name copied from `old`; and the new
    shares (None when the change is refused: the Update then carries the error)."""
    from runwrap.consumer.client import variables
    from runwrap.supervise.launch import Update

    shares: list[Share] = []
    contents: dict[str, Secret] = {}
    try:
        for index, spec in enumerate(specs):
            cred = changed.credentials.get(index)
            if cred is None:
                names, inside = old[index]
                shares.append(({var: Secret(v.buffer) for var, v in names.items()},
                               [Secret(v.buffer) for v in inside]))
            else:
                shares.append((variables(spec, cred, source, optional=optional),
                               file_share(source, spec, cred, contents)))
        injected = {var: value for names, _ in shares for var, value in names.items()}
        env = environment.build(parent, inherit, set, injected)
    except RunwrapError as exc:
        for value in (*contents.values(), *(v for names, inside in shares for v in (*names.values(), *inside))):
            value.wipe()
        return Update(changed.seq, error=exc.message), None
    env.update(paths)
    differ = tuple(var for (was, _), (now, _) in zip(old, shares, strict=True)
                   for var in sorted(was.keys() | now.keys()) if was.get(var) != now.get(var))
    masked = [value for var, value in injected.items() if var not in unmasked]
    return Update(changed.seq, env, (*masked, *(v for _, inside in shares for v in inside)), contents, differ), shares
