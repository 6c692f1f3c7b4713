"""The checks the exec path runs on every launch compile no regex and call no fnmatch (each compile
costs ~0.1 ms, and fnmatch compiles one per allow-list pattern), and give what the regex and fnmatch did.
The exec path's modules import no `re` (nor typing, json, ...) at all: see the last test."""

from __future__ import annotations

import ast
import fnmatch
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import runwrap
from runwrap.credential import Query, is_field_name
from runwrap.durations import parse_duration
from runwrap.environment import DEFAULT_INHERIT, base, is_valid_name
from runwrap.profile.files import Refusal, parse_mode

NAMES = st.text(alphabet=st.sampled_from("AZaz09_-*?[]!=.é\n"), max_size=12)
PATTERNS = st.text(alphabet=st.sampled_from("AZaz09_-*?[]!."), max_size=6)


@given(st.dictionaries(NAMES, st.just("v"), max_size=8), st.lists(PATTERNS, max_size=5))
def test_inheriting_is_fnmatchcase_against_each_pattern(parent: dict[str, str], patterns: list[str]) -> None:
    expected = {k: v for k, v in parent.items() if any(fnmatch.fnmatchcase(k, p) for p in patterns)}
    assert base(parent, patterns, {}) == expected


@pytest.mark.parametrize("parent", [
    {"PATH": "/bin", "LC_ALL": "C", "LC_": "x", "LCX": "y", "PATHX": "z", "path": "w", "TERM": "dumb", "A": "b"},
    {"LANG": "C.UTF-8", "LANGUAGE": "en", "TMPDIR": "/t", "TZ": "UTC", "LC_*": "odd"},
])
def test_the_default_allow_list_is_fnmatchcase(parent: dict[str, str]) -> None:
    expected = {k: v for k, v in parent.items() if any(fnmatch.fnmatchcase(k, p) for p in DEFAULT_INHERIT)}
    assert base(parent, None, {}) == expected


@given(NAMES)
def test_a_valid_name_is_what_the_regex_said(name: str) -> None:
    assert is_valid_name(name) == bool(re.match(r"[A-Za-z_][A-Za-z0-9_]*\Z", name))


def test_a_launch_s_checks_compile_no_regex_and_call_no_fnmatch() -> None:
    # re._compile is where every re.compile / re.match goes (3.10 to 3.13); counted from before the imports.
    script = """
import fnmatch, os, re
compiled, globbed = [], []
original, fnmatchcase = re._compile, fnmatch.fnmatchcase
re._compile = lambda pattern, flags: compiled.append(pattern) or original(pattern, flags)
fnmatch.fnmatchcase = lambda name, pattern: globbed.append(pattern) or fnmatchcase(name, pattern)
from runwrap import environment
from runwrap.credential import Query
from runwrap.secret import Secret
env = environment.build(dict(os.environ, LC_ALL="C"), None, {"APP_ENV": "prod"}, {"GH_TOKEN": Secret("x")})
Query(domain="api.github.com")
Query(id="secret/team/deploy")
from runwrap.credential import is_field_name
from runwrap.durations import parse_duration
from runwrap.profile.files import parse_mode
is_field_name("api_key"), parse_duration("1h30m"), parse_duration("2.5"), parse_mode("0600")
print(compiled, globbed)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out == "[] []\n"


# ---- the regexes the exec path used to compile, and the str methods that replaced them ----

FIELD_RE = r"[A-Za-z_][A-Za-z0-9_.-]{0,127}\Z"
ID_RE = r"^[A-Za-z0-9][A-Za-z0-9._:@-]*(?:/[A-Za-z0-9_:@-][A-Za-z0-9._:@-]*)*$"
NUMBER_RE = r"\d+(?:\.\d+)?"
PART_RE = r"(\d+(?:\.\d+)?)(ms|s|m|h|d)"
MODE_RE = r"(?:0o|0)?([0-7]{3})\Z"
# Unicode decimal digits (re's \d takes them, and float() reads them), a superscript (a digit, not a
# decimal), letters outside ASCII that isalpha() would take, and the characters the patterns treat apart.
ODD = "\u0663\u00b2\u00e9\u212a\n\t "


@given(st.text(alphabet=st.sampled_from("Az_09.-/:@ " + ODD), max_size=10) | st.text(max_size=130))
@example("a" * 128)
@example("a" * 129)
@example("api_key\n")
def test_a_field_name_is_what_the_regex_said(name: str) -> None:
    assert is_field_name(name) == bool(re.match(FIELD_RE, name))


def _query_id(text: str) -> str:
    try:
        return Query(id=text).id or ""
    except ValueError:
        return "refused"


@given(st.text(alphabet=st.sampled_from("aZ09._:@-/" + ODD), max_size=12))
@example("secret/team/deploy")
@example("a/.b")
@example("a//b")
@example("/a")
@example("a/")
@example("_a")
@example("a/_b")
@example("abc\n")  # the regex's `$` matched before one newline at the end: kept as it was
@example("abc\n\n")
@example("a" * 256)
@example("a" * 257)
def test_an_id_is_what_the_regex_said(text: str) -> None:
    expected = text if len(text) <= 256 and re.match(ID_RE, text) else "refused"
    assert _query_id(text) == expected


def _regex_duration(text: str) -> float | str:
    """parse_duration's text path as it was, with re."""
    value = text.strip().lower()
    if re.fullmatch(NUMBER_RE, value):
        return float(value)
    pos, total = 0, 0.0
    for match in re.finditer(PART_RE, value):
        if match.start() != pos:
            break
        total += float(match.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}[match.group(2)]
        pos = match.end()
    if pos != len(value) or not value:
        return f"not a duration: {text!r} (use e.g. 500ms, 30s, 5m, 2h, 1h30m)"
    if total - total != 0:
        return f"not a duration: {text!r} is too long to count"
    return total


def _duration(text: str) -> float | str:
    try:
        return parse_duration(text)
    except ValueError as exc:
        return str(exc)


@given(st.text(alphabet=st.sampled_from("0123456789.msmhdxS " + ODD), max_size=10))
@example("1h30m")
@example("1.5s")
@example("500ms")
@example("5ms5")
@example("1.s")
@example(".5s")
@example("1..5s")
@example("1.5.5s")
@example("\u0663\u0660s")  # Arabic-Indic 30s
@example("\u00b2s")  # a superscript two is no decimal digit
@example("2 m")
@example(" 5M ")
@example("")
@example("9" * 400 + "d")
def test_a_duration_is_what_the_regex_said(text: str) -> None:
    assert _duration(text) == _regex_duration(text)


def _mode(text: str) -> int | str:
    try:
        return parse_mode(text)
    except Refusal as exc:
        return "not octal" if "is not an octal file mode" in exc.what else "refused"


def _regex_mode(text: str) -> int | str:
    """parse_mode as it was: the regex, then only 0400, 0600, 0440 and 0640 pass its checks."""
    match = re.match(MODE_RE, text.strip())
    if not match:
        return "not octal"
    mode = int(match.group(1), 8)
    return mode if mode in (0o400, 0o600, 0o440, 0o640) else "refused"


@given(st.text(alphabet=st.sampled_from("0o4678O \n" + ODD), max_size=6))
@example("0600")
@example("600")
@example("0o600")
@example("060")
@example("00600")
@example("0o60")
@example("0o0600")
@example("000")
@example("0400\n")
@example("\u0664\u0660\u0660")
def test_a_mode_is_what_the_regex_said(text: str) -> None:
    assert _mode(text) == _regex_mode(text)


# ---- what the exec path's modules import when they load ----

EXEC_PATH_MODULES = [
    "__main__.py", "cli/exec_args.py", "run.py", "errors.py", "record.py", "credential.py", "environment.py",
    "durations.py", "paths.py", "json_codec.py", "profile/model.py", "profile/lookup.py", "profile/cache.py",
    "profile/files.py", "consumer/client.py", "consumer/connections.py", "wire/framing.py", "wire/messages.py",
    "wire/address.py", "wire/identity.py",
]
# Each costs 1-10 ms of every `runwrap PROFILE -- cmd` (README, "Performance"); a function that needs one
# on a rare path imports it there, and annotations take theirs under `if TYPE_CHECKING:`.
HEAVY = {"typing", "collections", "re", "json", "contextlib", "functools", "enum", "pathlib", "socket",
         "dataclasses", "inspect", "asyncio", "tempfile", "shutil", "hashlib", "urllib", "fnmatch", "signal",
         "subprocess", "yaml", "typer", "logging"}


def _imported_at_load(tree: ast.Module) -> list[str]:
    """The modules a module's top level imports: everything but function bodies and `if TYPE_CHECKING:`."""
    found: list[str] = []

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.Import):
                found.extend(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.append(node.module)
            elif isinstance(node, ast.If):
                if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                for block in (node.body, *(h.body for h in node.handlers), node.orelse, node.finalbody):
                    visit(block)
            elif isinstance(node, ast.ClassDef):
                visit(node.body)

    visit(tree.body)
    return found


@pytest.mark.parametrize("name", EXEC_PATH_MODULES)
def test_the_exec_path_modules_import_nothing_heavy(name: str) -> None:
    source = (Path(runwrap.__file__).parent / name).read_text()
    tree = ast.parse(source)
    heavy = [module for module in _imported_at_load(tree) if module.split(".")[0] in HEAVY]
    assert heavy == []
    # TYPE_CHECKING is the module's own constant (typing's would import typing)
    assert "TYPE_CHECKING = False" in source or "TYPE_CHECKING" not in source
