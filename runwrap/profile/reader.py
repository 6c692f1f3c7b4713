"""The YAML side of profiles: parse one file and check every value where it stands.

Imported only when a profile has to be parsed (yaml alone costs 20-30 ms to import; see
`runwrap.profile.lookup`). The file is composed, not loaded, so every value keeps its line and its text
as written: `NO: username` stays the variable NO (not the boolean false), and `PORT: 8080` in
env.set is refused with a request to quote it instead of quietly becoming "8080". The first
problem found is reported as `FILE:LINE: what is wrong — what to change`.
"""

from __future__ import annotations

import os
from types import MappingProxyType
from typing import Any

import yaml
from yaml import Node

from runwrap.credential import FIELDS, Query, is_field_name
from runwrap.durations import LONGEST_WAIT, LONGEST_WAIT_TEXT, parse_duration
from runwrap.environment import MAX_ARG_STRLEN, is_valid_name, quote_name
from runwrap.errors import ProfileError
from runwrap.profile import files
from runwrap.profile.model import DEFAULT_MODE, CredentialSpec, FileSpec, Profile, name_of, parse_on_change

# runwrap.code_cache learns no bundle from a launch that reads YAML: the common launch takes its
# profile from the cache, and a bundle holding this module would import yaml (~25 ms) on every run.
OFF_THE_LAUNCH_PATH = True

TOP_KEYS = ("description", "connection", "credentials", "env", "mask", "mask_hex", "timeout", "kill_grace",
            "on_change")
CREDENTIAL_KEYS = ("domain", "id", "env", "files")
FILE_KEYS = ("template", "field", "mode", "path")
ENV_KEYS = ("inherit", "set")

_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_NUMBER = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
_GLOB_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_*?[]!-")


def _fail(shown: str, node: Node | int, what: str, fix: str) -> ProfileError:
    line = node if isinstance(node, int) else node.start_mark.line + 1
    return ProfileError(f"{shown}:{line}: {what} — {fix}")


def _closest(word: str, choices: tuple[str, ...]) -> str:
    import difflib  # only on the error path

    match = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    listed = ", ".join(choices)
    return f'did you mean "{match[0]}"? (valid: {listed})' if match else f"use one of: {listed}"


def _kind(node: Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return {
        _STR: "text",
        _NULL: "empty",
        _BOOL: "true/false",
        _NUMBER[0]: "a number",
        _NUMBER[1]: "a number",
    }.get(node.tag, f"tagged {node.tag}")


def parse(data: bytes, path: str | os.PathLike[str], shown: str) -> Profile:
    """The checked profile in `data`, the contents of `path` (shown in messages as `shown`)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ProfileError(f"{shown}:{line}: not UTF-8 text — save the file as UTF-8") from None
    try:
        loader = yaml.SafeLoader(text)
        try:
            root = loader.get_single_node()
            return _Reader(shown, loader).profile(root, path)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problem = exc.problem or exc.context or "not valid YAML"
        raise ProfileError(f"{shown}:{line}: invalid YAML: {problem} — fix the syntax on that line") from None
    except yaml.YAMLError as exc:  # ReaderError: a control character yaml does not allow
        position = getattr(exc, "position", 0)
        line = text.count("\n", 0, position) + 1
        raise ProfileError(
            f"{shown}:{line}: a character YAML does not allow — remove the control character"
        ) from None


class _Reader:
    """Walks the composed YAML nodes of one profile, checking each value where it stands."""

    def __init__(self, shown: str, loader: Any) -> None:
        self.shown = shown
        self.loader = loader

    def fail(self, node: Node | int, what: str, fix: str) -> ProfileError:
        return _fail(self.shown, node, what, fix)

    def mapping(self, node: Node, where: str, keys: tuple[str, ...] | None) -> dict[str, tuple[Node, Node]]:
        """{key: (key node, value node)}; refuses duplicate keys and, when `keys` is given, unknown ones."""
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{where} is {_kind(node)}", "make it a mapping of key: value lines")
        # YAML merge keys (<<: *anchor): flattening puts the merged entries first, so that a later
        # entry overrides an earlier one, as YAML says; only a key written twice is a mistake.
        written = {id(key_node) for key_node, _ in node.value}
        self.loader.flatten_mapping(node)
        items: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.fail(
                    key_node, f"a key in {where} is {_kind(key_node)}", "use a plain name as the key"
                )
            key = key_node.value  # as written: NO stays "NO", not false
            if key in items and id(key_node) in written and id(items[key][0]) in written:
                first = items[key][0].start_mark.line + 1
                raise self.fail(
                    key_node,
                    f"{quote_name(key)} appears twice in {where}",
                    f"remove one (the other is on line {first})",
                )
            if keys is not None and key not in keys:
                raise self.fail(key_node, f"unknown key {quote_name(key)} in {where}", _closest(key, keys))
            items[key] = (key_node, value_node)
        return items

    def text(self, node: Node, what: str, *, fix: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or node.tag != _STR:
            raise self.fail(node, f"{what} is {_kind(node)}", fix)
        return str(node.value)

    def profile(self, root: Node | None, path: str | os.PathLike[str]) -> Profile:
        if root is None:
            raise self.fail(1, "the profile is empty", "add a credentials: list (see SPEC, Profiles)")
        if not isinstance(root, yaml.MappingNode):
            raise self.fail(
                root, f"the profile is {_kind(root)}", "write a mapping with credentials:, env: and so on"
            )
        top = self.mapping(root, "the profile", TOP_KEYS)
        if "credentials" not in top:
            raise self.fail(
                root,
                "the profile has no credentials:",
                "add a credentials: list with one entry per domain or id",
            )

        description, connection = "", None
        if "description" in top:
            node = top["description"][1]
            if not (isinstance(node, yaml.ScalarNode) and node.tag == _NULL):
                description = self.text(node, "description", fix="write one line of text")
        if "connection" in top:
            node = top["connection"][1]
            if not (isinstance(node, yaml.ScalarNode) and node.tag == _NULL):
                connection = self.text(
                    node, "connection", fix="write a connection's name (runwrap connections list)"
                )
        credentials = self.credentials(top["credentials"][1])
        inherit, set_ = self.env(top["env"][1]) if "env" in top else (None, {})
        for spec in credentials:
            for var, file in spec.files.items():
                if var in set_:
                    raise self.fail(file.line, f"{var} is also set in env.set", "rename one of them")
        mask = self.flag(top, "mask", default=True)
        mask_hex = self.flag(top, "mask_hex", default=False)
        timeout = self.duration(top, "timeout", allow_zero=False)
        kill_grace = self.duration(top, "kill_grace", allow_zero=True)
        on_change = self.on_change(top, credentials)

        return Profile(
            name=name_of(path),
            path=path,
            description=description,
            connection=connection,
            credentials=credentials,
            inherit=inherit,
            set=MappingProxyType(set_),
            mask=mask,
            mask_hex=mask_hex,
            timeout=timeout,
            kill_grace=kill_grace,
            on_change=on_change,
        )

    def on_change(self, top: dict[str, tuple[Node, Node]], credentials: tuple[CredentialSpec, ...]) -> str:
        if "on_change" not in top:
            return "none"
        node = top["on_change"][1]
        if isinstance(node, yaml.ScalarNode) and node.tag == _NULL:
            return "none"
        fix = "write on_change: restart, signal:HUP, exit or none"
        try:
            mode = parse_on_change(self.text(node, "on_change", fix=fix))
        except ValueError as exc:
            what, _, hint = str(exc).partition(" — ")
            raise self.fail(node, f"on_change: {what}", hint or fix) from None
        if mode.startswith("signal:") and not any(spec.files for spec in credentials):
            # A signal can only make the child read its files again: its environment is fixed at exec.
            raise self.fail(node, f"on_change: {mode} needs files: — a running process's environment cannot be"
                            " changed, so only a file can show it a new value",
                            "put the values it re-reads in files:, or use on_change: restart")
        return mode

    def credentials(self, node: Node) -> tuple[CredentialSpec, ...]:
        fix = "make it a list of entries, each - domain: HOST (or id: ID) with env: VAR: field"
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, f"credentials is {_kind(node)}", fix)
        if not node.value:
            raise self.fail(node, "credentials is an empty list", fix)
        claimed: dict[str, int] = {}  # variable -> line of the credential that sets it
        specs = []
        for item in node.value:
            entry = self.mapping(item, "a credential", CREDENTIAL_KEYS)
            line = item.start_mark.line + 1
            if ("domain" in entry) == ("id" in entry):
                what = (
                    "a credential has both domain: and id:"
                    if "domain" in entry
                    else "a credential has neither domain: nor id:"
                )
                raise self.fail(item, what, "give exactly one of them")
            if "domain" in entry:
                value_node = entry["domain"][1]
                domain = self.text(value_node, "domain", fix="write a host name such as example.com")
                try:
                    query = Query(domain=domain)
                except ValueError:
                    raise self.fail(
                        value_node,
                        f"{quote_name(domain)} is not a domain name",
                        "write a host name such as example.com",
                    ) from None
            else:
                value_node = entry["id"][1]
                item_id = self.text(value_node, "id", fix='quote the vault item id: id: "..."')
                try:
                    query = Query(id=item_id)
                except ValueError:
                    raise self.fail(
                        value_node,
                        f"{quote_name(item_id)} is not a vault item id",
                        "copy the item's id from the vault (letters, digits, . _ : -)",
                    ) from None
            if "env" not in entry and "files" not in entry:
                raise self.fail(
                    item,
                    "a credential has no env:",
                    "add env: with lines VAR: field, e.g. DEPLOY_TOKEN: password (or files:)",
                )
            env_node = entry["env"][1] if "env" in entry else None
            variables = self.mapping(env_node, "a credential's env", None) if env_node is not None else {}
            if env_node is not None and not variables:
                raise self.fail(
                    env_node,
                    "a credential's env is empty",
                    "add lines VAR: field, e.g. DEPLOY_TOKEN: password",
                )
            env: dict[str, str] = {}
            for var, (key_node, field_node) in variables.items():
                self.check_name(key_node, var)
                field = (
                    field_node.value
                    if isinstance(field_node, yaml.ScalarNode) and field_node.tag == _STR
                    else None
                )
                if field is None or not is_field_name(field):
                    shown = quote_name(field) if field is not None else _kind(field_node)
                    raise self.fail(
                        field_node, f"{shown} is not a field name for {var}",
                        f"name a field such as {', '.join(FIELDS)}, or a key the item has (api_key)",
                    )
                if var in claimed:
                    raise self.fail(
                        key_node,
                        f"{var} is also set by the credential on line {claimed[var]}",
                        "rename one of them",
                    )
                claimed[var] = line
                env[var] = field
            made = self.files(entry["files"][1], claimed, line) if "files" in entry else {}
            specs.append(CredentialSpec(query=query, env=MappingProxyType(env), line=line,
                                        files=MappingProxyType(made)))
        return tuple(specs)

    def files(self, node: Node, claimed: dict[str, int], line: int) -> dict[str, FileSpec]:
        """A credential's files: VAR: {template: ... | field: ..., mode: ..., path: ...}."""
        example = 'SSH_KEY: {field: notes}, or PGPASSFILE: {template: "*:*:*:{{username}}:{{password}}", mode: "0600"}'
        entries = self.mapping(node, "a credential's files", None)
        if not entries:
            raise self.fail(node, "a credential's files is empty", f"add lines such as {example}")
        made: dict[str, FileSpec] = {}
        for var, (key_node, entry_node) in entries.items():
            self.check_name(key_node, var)
            if var in claimed:
                where = "this credential" if claimed[var] == line else f"the credential on line {claimed[var]}"
                raise self.fail(key_node, f"{var} is also set by {where}", "rename one of them")
            entry = self.mapping(entry_node, f"the file {var}", FILE_KEYS)
            if ("template" in entry) == ("field" in entry):
                both = "both template: and field:" if "template" in entry else "neither template: nor field:"
                raise self.fail(entry_node, f"the file {var} has {both}", "give exactly one of them")
            try:
                if "field" in entry:
                    field_node = entry["field"][1]
                    field = self.text(field_node, f"the field of {var}", fix="write a field name such as notes")
                    if not is_field_name(field):
                        raise self.fail(field_node, f"{quote_name(field)} is not a field name",
                                        "write an item key: letters, digits, _ . -, not starting with a digit")
                    template = None
                else:
                    field_node = entry["template"][1]
                    field = None
                    template = self.text(field_node, f"the template of {var}", fix=f"quote it: {example}")
                    files.parse_template(template)
                mode = DEFAULT_MODE
                if "mode" in entry:
                    field_node = entry["mode"][1]
                    if not isinstance(field_node, yaml.ScalarNode) or field_node.tag not in (_STR, _NUMBER[0]):
                        raise self.fail(field_node, f"the mode of {var} is {_kind(field_node)}",
                                        'write an octal mode such as "0600"')
                    mode = files.parse_mode(field_node.value)  # as written: 0600 stays 0600, not 384
            except files.Refusal as refusal:
                raise self.fail(field_node, f"{var}: {refusal.what}", refusal.fix) from None
            path = False
            if "path" in entry:
                path_node = entry["path"][1]
                if not isinstance(path_node, yaml.ScalarNode) or path_node.tag != _BOOL:
                    raise self.fail(path_node, f"path of {var} is {_kind(path_node)}",
                                    "write path: true or path: false")
                path = path_node.value.lower() in ("true", "yes", "on")
            claimed[var] = line
            made[var] = FileSpec(template=template, field=field, mode=mode, path=path,
                                 line=key_node.start_mark.line + 1)
        return made

    def check_name(self, node: Node, name: str) -> None:
        if not is_valid_name(name):
            raise self.fail(
                node,
                f"{quote_name(name)} is not a valid variable name",
                "use letters, digits and _, not starting with a digit",
            )

    def env(self, node: Node) -> tuple[tuple[str, ...] | None, dict[str, str]]:
        if isinstance(node, yaml.ScalarNode) and node.tag == _NULL:
            return None, {}
        env = self.mapping(node, "env", ENV_KEYS)
        inherit = None
        if "inherit" in env:
            list_node = env["inherit"][1]
            if isinstance(list_node, yaml.ScalarNode) and list_node.tag == _NULL:
                raise self.fail(
                    list_node,
                    "env.inherit is empty",
                    "write inherit: [] to inherit nothing, or remove it for the default list",
                )
            if not isinstance(list_node, yaml.SequenceNode):
                raise self.fail(
                    list_node,
                    f"env.inherit is {_kind(list_node)}",
                    'make it a list, e.g. inherit: [PATH, HOME, "LC_*"]',
                )
            patterns = []
            for item in list_node.value:
                pattern = self.text(
                    item, "an entry of env.inherit", fix='write a variable name or a glob such as "LC_*"'
                )
                if not pattern or not set(pattern) <= _GLOB_CHARS:
                    raise self.fail(
                        item,
                        f"{quote_name(pattern)} is not a variable name or glob",
                        'list names such as PATH or globs such as "LC_*"',
                    )
                patterns.append(pattern)
            inherit = tuple(patterns)
        values: dict[str, str] = {}
        if "set" in env:
            set_node = env["set"][1]
            if isinstance(set_node, yaml.ScalarNode) and set_node.tag == _NULL:
                return inherit, values
            for var, (key_node, value_node) in self.mapping(set_node, "env.set", None).items():
                self.check_name(key_node, var)
                if isinstance(value_node, yaml.ScalarNode) and value_node.tag in (*_NUMBER, _BOOL):
                    raise self.fail(
                        value_node,
                        f"{var} is {_kind(value_node)} to YAML, not text",
                        f'quote it: {var}: "{value_node.value}"',
                    )
                if isinstance(value_node, yaml.ScalarNode) and value_node.tag == _NULL:
                    raise self.fail(value_node, f"{var} has no value", f'write {var}: "" for an empty value')
                value = self.text(value_node, var, fix=f'write one text value: {var}: "..."')
                if "\0" in value:
                    raise self.fail(
                        value_node, f"{var} contains a NUL byte, which a variable cannot carry", "remove it"
                    )
                if len(var.encode()) + len(value.encode("utf-8", "surrogateescape")) + 2 > MAX_ARG_STRLEN:
                    raise self.fail(value_node, f"{var} is {len(value.encode('utf-8', 'surrogateescape'))} bytes;"
                                    f" Linux refuses a variable of {MAX_ARG_STRLEN} bytes or more as NAME=value"
                                    " (MAX_ARG_STRLEN)", "make it shorter, or put it in a file the command reads")
                values[var] = value
        return inherit, values

    def flag(self, top: dict[str, tuple[Node, Node]], key: str, *, default: bool) -> bool:
        if key not in top:
            return default
        node = top[key][1]
        if not isinstance(node, yaml.ScalarNode) or node.tag != _BOOL:
            raise self.fail(node, f"{key} is {_kind(node)}", f"write {key}: true or {key}: false")
        return node.value.lower() in ("true", "yes", "on")

    def duration(self, top: dict[str, tuple[Node, Node]], key: str, *, allow_zero: bool) -> float | None:
        if key not in top:
            return None
        node = top[key][1]
        if isinstance(node, yaml.ScalarNode) and node.tag == _NULL:
            return None
        fix = "write a duration such as 500ms, 30s, 5m, 2h or 1h30m"
        if not isinstance(node, yaml.ScalarNode) or node.tag not in (_STR, *_NUMBER):
            raise self.fail(node, f"{key} is {_kind(node)}", fix)
        try:
            seconds = parse_duration(node.value)
        except ValueError:
            raise self.fail(node, f"{key} {quote_name(node.value)} is not a duration", fix) from None
        if seconds == 0 and not allow_zero:
            raise self.fail(node, f"{key} is zero", f"remove {key}: for no limit, or {fix}")
        if seconds > LONGEST_WAIT:
            raise self.fail(node, f"{key} {node.value} is longer than {LONGEST_WAIT_TEXT}, the longest runwrap "
                            "waits (poll(2) takes at most 24.8 days)", f"write at most {LONGEST_WAIT_TEXT}")
        return seconds
