"""The checks the exec path runs on every launch compile no regex and call no fnmatch (each compile
costs ~0.1 ms, and fnmatch compiles one per allow-list pattern), and give what the regex and fnmatch did."""

from __future__ import annotations

import fnmatch
import re
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runwrap.environment import DEFAULT_INHERIT, base, is_valid_name

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
print(compiled, globbed)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out == "[] []\n"
