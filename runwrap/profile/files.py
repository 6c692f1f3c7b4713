"""The rules of a credential's `files:` entries: field names, templates and modes (pure, no yaml).

`profile.reader` checks a profile with them, `runwrap run --file` checks its flags with them, and
the exec path renders a file's content with `render`. What was decided where SPEC is silent
(docs/files.md):

- A field name is any item key `[A-Za-z_][A-Za-z0-9_.-]*` (the env mapping takes the same).
- A template substitutes `{{field}}` (spaces inside the braces allowed: `{{ password }}`) and
  nothing else; `{{{{` is a literal `{{`. A `{{` without its `}}`, anything but a field name inside
  the braces, and a template that names no field at all are refused.
- A mode is three octal digits, optionally after `0` or `0o` (`0600`, `600`, `0o600`). The owner
  must be able to read; the owner may write; the group may read if the profile says so (`0440`,
  `0640`); nothing may execute, the group may not write, and others get nothing. So exactly 0400
  (the default), 0600, 0440 and 0640. ssh and psql refuse the two group-readable ones.
"""

from __future__ import annotations

from runwrap.credential import is_field_name
from runwrap.secret import Secret

TYPE_CHECKING = False  # not typing's: the exec path imports this module
if TYPE_CHECKING:
    from collections.abc import Mapping

MODES = (0o400, 0o600, 0o440, 0o640)
_OCTAL = frozenset("01234567")
_FIX_MODE = 'write mode: "0400" (the default) or "0600"; "0440"/"0640" also let the group read'


class Refusal(ValueError):
    """What is wrong with a files: value, and what to change (the reader adds FILE:LINE)."""

    def __init__(self, what: str, fix: str) -> None:
        super().__init__(f"{what} — {fix}")
        self.what = what
        self.fix = fix


def parse_template(text: str) -> tuple[str, ...]:
    """The template as literal text and field names alternating: (text, field, text, ..., text).

    Raises Refusal for a `{{` without `}}`, braces around anything but a field name, and a
    template that names no field.
    """
    parts: list[str] = []
    literal: list[str] = []
    i = 0
    while True:
        start = text.find("{{", i)
        if start < 0:
            literal.append(text[i:])
            break
        literal.append(text[i:start])
        if text.startswith("{{{{", start):
            literal.append("{{")
            i = start + 4
            continue
        end = text.find("}}", start + 2)
        if end < 0:
            raise Refusal(f"the template has a {{{{ at character {start + 1} with no }}}} after it",
                          "close it as {{field}}, or write {{{{ for a literal {{")
        name = text[start + 2 : end].strip()
        if not is_field_name(name):
            shown = text[start : end + 2]
            raise Refusal(f"the template's {shown!r} is not a field (templates substitute {{{{field}}}} only)",
                          "write a field name inside the braces, e.g. {{password}}, or {{{{ for a literal {{")
        parts.append("".join(literal))
        parts.append(name)
        literal = []
        i = end + 2
    parts.append("".join(literal))
    if len(parts) == 1:
        raise Refusal("the template names no field, so the file would hold no secret",
                      "add a field such as {{password}}, or use field: NAME for the whole value")
    return tuple(parts)


def template_fields(text: str) -> tuple[str, ...]:
    """The fields a template names, each once, in order of first use."""
    return tuple(dict.fromkeys(parse_template(text)[1::2]))


def parse_mode(text: str) -> int:
    """The mode that `text` writes (octal), if it is one of MODES; else Refusal saying why."""
    # `(?:0o|0)?([0-7]{3})`: three octal digits, after 0o, 0 or nothing (str methods: no `re` at import)
    written = text.strip()
    digits = next((rest for rest in (written.removeprefix("0o"), written.removeprefix("0"), written)
                   if len(rest) == 3 and _OCTAL.issuperset(rest)), None)
    if digits is None:
        raise Refusal(f"mode {text!r} is not an octal file mode", _FIX_MODE)
    mode = int(digits, 8)
    shown = f"0{mode:03o}"
    if mode & 0o111:
        raise Refusal(f"mode {shown} makes the secret file executable", _FIX_MODE)
    if mode & 0o007:
        raise Refusal(f"mode {shown} gives other users access to the secret file", _FIX_MODE)
    if mode & 0o020:
        raise Refusal(f"mode {shown} lets the group write the secret file", _FIX_MODE)
    if not mode & 0o400:
        raise Refusal(f"mode {shown} does not let the command read its own file", _FIX_MODE)
    return mode


def render(parts: tuple[str, ...], values: Mapping[str, Secret]) -> Secret:
    """The file's content, made in one buffer of its final size (no copies left by resizing)."""
    chunks: list[bytes | bytearray] = [
        part.encode("utf-8") if i % 2 == 0 else values[part].buffer for i, part in enumerate(parts)
    ]
    buf = bytearray(sum(len(chunk) for chunk in chunks))
    at = 0
    for chunk in chunks:
        buf[at : at + len(chunk)] = chunk
        at += len(chunk)
    return Secret.from_buffer(buf)
