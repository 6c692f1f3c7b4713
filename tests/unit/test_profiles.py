"""Profiles: lookup order, every refusal with its file, line and fix, and the parsed-profile cache."""

from __future__ import annotations

import json
import os
import textwrap
import time
from pathlib import Path

import pytest

from runwrap.credential import Query
from runwrap.errors import EXIT_RUNWRAP, ProfileError
from runwrap.profile import cache as profile_cache
from runwrap.profile import lookup
from runwrap.profile.lookup import find, is_path, list_profiles, load, resolve, search_dirs

REPO = Path(__file__).resolve().parents[2]

SPEC_PROFILE = """\
# profiles/deploy.yaml
description: Deploy the web app            # optional
connection: laptop                         # optional
credentials:
  - domain: prod.example.com               # or  id: <vault item id>
    env:
      DEPLOY_USER: username
      DEPLOY_TOKEN: password
env:
  inherit: [PATH, HOME, LANG, "LC_*", TERM]
  set:
    DEPLOY_ENV: production
mask: true
timeout: 30m
kill_grace: 5s
"""


@pytest.fixture
def here(tmp_path, monkeypatch):
    """A project folder as the current directory, so messages show `profiles/deploy.yaml`."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "profiles").mkdir()
    return tmp_path


def write(folder: Path, text: str, name: str = "deploy.yaml") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def refusal(here: Path, text: str) -> str:
    path = write(here / "profiles", text)
    with pytest.raises(ProfileError) as info:
        load(path)
    assert info.value.exit_status == EXIT_RUNWRAP
    message = str(info.value)
    assert "\n" not in message
    assert " — " in message  # what is wrong — what to change
    return message


# --- what a valid profile gives ------------------------------------------------------------------


def test_spec_profile(here):
    path = write(here / "profiles", SPEC_PROFILE)
    profile = load(path)
    assert profile.name == "deploy"
    assert profile.path == path
    assert profile.description == "Deploy the web app"
    assert profile.connection == "laptop"
    assert len(profile.credentials) == 1
    spec = profile.credentials[0]
    assert spec.query == Query(domain="prod.example.com")
    assert dict(spec.env) == {"DEPLOY_USER": "username", "DEPLOY_TOKEN": "password"}
    assert spec.line == 5
    assert profile.inherit == ("PATH", "HOME", "LANG", "LC_*", "TERM")
    assert dict(profile.set) == {"DEPLOY_ENV": "production"}
    assert profile.mask is True
    assert profile.timeout == 1800.0
    assert profile.kill_grace == 5.0


def test_defaults(here):
    profile = load(
        write(
            here,
            """\
            credentials:
              - id: 8b4c5e0a-0000-4000-8000-000000000002
                env: {USER_NAME: username}
            """,
            "min.yml",
        )
    )
    assert profile.name == "min"
    assert profile.description == ""
    assert profile.connection is None
    assert profile.credentials[0].query == Query(id="8b4c5e0a-0000-4000-8000-000000000002")
    assert profile.inherit is None  # the default allow-list
    assert dict(profile.set) == {}
    assert profile.mask is True
    assert profile.timeout is None and profile.kill_grace is None


def test_options(here):
    profile = load(
        write(
            here,
            """\
            description:
            connection: ci
            credentials:
              - domain: GitHub.com.
                env: {A: username}
              - domain: test.com
                env: {B: totp, C: credential_id}
            env:
              inherit: []
              set:
                EMPTY: ""
                PORT: "8080"
                MULTI: "a\\nb=c — ü"
            mask: false
            timeout: 90
            kill_grace: 0
            """,
        )
    )
    assert profile.description == ""
    assert profile.connection == "ci"
    assert [c.query.domain for c in profile.credentials] == ["github.com", "test.com"]
    assert [c.line for c in profile.credentials] == [4, 6]
    assert profile.inherit == ()
    assert dict(profile.set) == {"EMPTY": "", "PORT": "8080", "MULTI": "a\nb=c — ü"}
    assert profile.mask is False
    assert profile.timeout == 90.0 and profile.kill_grace == 0.0


def test_names_are_kept_as_written(here):
    # YAML 1.1 would read these keys as booleans; a profile means the variables NO, ON and YES.
    profile = load(
        write(here, "credentials:\n  - domain: a.com\n    env: {NO: username, ON: password, YES: uri}\n")
    )
    assert dict(profile.credentials[0].env) == {"NO": "username", "ON": "password", "YES": "uri"}


def test_merge_keys_work(here):
    profile = load(
        write(
            here,
            """\
            credentials:
              - domain: a.com
                env: {LOGIN: username, SECRET: password}
              - domain: b.com
                env:
                  <<: {B_LOGIN: username, B_CODE: password}
                  B_CODE: totp
            env:
              set:
                <<: [{A: first, B: first}, {A: second, C: second}]
                C: own
            """,
        )
    )
    assert dict(profile.credentials[1].env) == {"B_LOGIN": "username", "B_CODE": "totp"}  # overridden
    assert dict(profile.set) == {"A": "first", "B": "first", "C": "own"}  # earlier merges win, as YAML says


def test_profile_is_immutable(here):
    profile = load(write(here, SPEC_PROFILE))
    with pytest.raises(TypeError):
        profile.set["X"] = "y"  # type: ignore[index]
    with pytest.raises(TypeError):
        profile.credentials[0].env["X"] = "password"  # type: ignore[index]


@pytest.mark.parametrize("name", ["demo", "deploy", "totp"])
def test_shipped_examples_are_valid(name):
    profile = load(REPO / "profiles" / f"{name}.yaml")
    assert profile.description
    domains = {"demo": "github.com", "deploy": "example.com", "totp": "test.com"}
    assert profile.credentials[0].query.domain == domains[name]


def test_shipped_demo_and_totp_use_the_names_the_quickstart_expects():
    assert dict(load(REPO / "profiles" / "demo.yaml").credentials[0].env) == {
        "DEMO_USER": "username",
        "DEMO_PASSWORD": "password",
    }
    assert "totp" in load(REPO / "profiles" / "totp.yaml").credentials[0].env.values()


# --- every refusal: file, line, what is wrong and what to change --------------------------------------


def test_message_shows_the_path_relative_to_the_current_folder(here):
    message = refusal(here, "credentials:\n  - domain: a.com\n    env: {A: 9lives}\n")
    assert message.startswith("profiles/deploy.yaml:3: ")


def test_message_shows_an_outside_path_in_full(here, tmp_path_factory):
    outside = write(
        tmp_path_factory.mktemp("elsewhere"), "mask: maybe\ncredentials: [{domain: a.com, env: {A: uri}}]\n"
    )
    with pytest.raises(ProfileError) as info:
        load(outside)
    assert str(info.value).startswith(f"{outside}:1: ")


@pytest.mark.parametrize(
    ("text", "line", "what", "fix"),
    [
        # YAML itself
        ("credentials:\n  - domain: a.com\n   env: {A: username}\n", 3, "invalid YAML", "fix the syntax"),
        ("credentials:\n\t- domain: a.com\n", 2, "invalid YAML", "fix the syntax"),
        ("credentials: [a\n", 2, "invalid YAML", "fix the syntax"),
        ("mask: true\n---\nmask: false\n", 2, "invalid YAML", "fix the syntax"),
        ("mask: true\x07\n", 1, "a character YAML does not allow", "remove the control character"),
        # the file's shape
        ("", 1, "the profile is empty", "add a credentials: list"),
        ("# only a comment\n", 1, "the profile is empty", "add a credentials: list"),
        ("- domain: a.com\n", 1, "the profile is a list", "write a mapping"),
        ("just text\n", 1, "the profile is text", "write a mapping"),
        ("description: x\n", 1, "no credentials:", "add a credentials: list"),
        # top-level keys
        ("credential:\n  - domain: a.com\n", 1, 'unknown key "credential"', 'did you mean "credentials"?'),
        ("credentials: []\nmaks: true\n", 2, 'unknown key "maks"', 'did you mean "mask"?'),
        (
            "xyzzy: 1\n",
            1,
            'unknown key "xyzzy"',
            "use one of: description, connection, credentials, env, mask",
        ),
        ("mask: true\nmask: false\n", 2, '"mask" appears twice', "remove one (the other is on line 1)"),
        ("description: [a, b]\ncredentials: []\n", 1, "description is a list", "write one line of text"),
        ("connection: 7\ncredentials: []\n", 1, "connection is a number", "write a connection's name"),
        # credentials
        ("credentials: github.com\n", 1, "credentials is text", "make it a list of entries"),
        ("credentials: []\n", 1, "credentials is an empty list", "make it a list of entries"),
        ("credentials:\n  - github.com\n", 2, "a credential is text", "make it a mapping"),
        (
            "credentials:\n  - domain: a.com\n    id: abc\n    env: {A: username}\n",
            2,
            "both domain: and id:",
            "give exactly one of them",
        ),
        ("credentials:\n  - env: {A: username}\n", 2, "neither domain: nor id:", "give exactly one of them"),
        (
            "credentials:\n  - domian: a.com\n    env: {A: username}\n",
            2,
            'unknown key "domian" in a credential',
            'did you mean "domain"?',
        ),
        (
            "credentials:\n  - domain: not a domain!\n    env: {A: username}\n",
            2,
            '"not a domain!" is not a domain name',
            "write a host name such as example.com",
        ),
        (
            "credentials:\n  - domain: 42\n    env: {A: username}\n",
            2,
            "domain is a number",
            "write a host name",
        ),
        (
            "credentials:\n  - id: has space\n    env: {A: username}\n",
            2,
            '"has space" is not a vault item id',
            "copy the item's id from the vault",
        ),
        (
            "credentials:\n  - id: 12345\n    env: {A: username}\n",
            2,
            "id is a number",
            "quote the vault item id",
        ),
        (
            "credentials:\n  - domain: a.com\n",
            2,
            "a credential has no env:",
            "add env: with lines VAR: field",
        ),
        ("credentials:\n  - domain: a.com\n    env: {}\n", 3, "env is empty", "add lines VAR: field"),
        (
            "credentials:\n  - domain: a.com\n    env: [A]\n",
            3,
            "a credential's env is a list",
            "make it a mapping",
        ),
        # variables and fields
        (
            "credentials:\n  - domain: a.com\n    env:\n"
            "      DEPLOY_USER: username\n      DEPLOY_TOKEN: pass word\n",
            5,
            '"pass word" is not a field name for DEPLOY_TOKEN',
            "name a field such as username, password, totp, uri, notes, domain, credential_id, "
            "or a key the item has (api_key)",
        ),
        (
            "credentials:\n  - domain: a.com\n    env: {A: 9lives}\n",
            3,
            '"9lives" is not a field name',
            "name a field such as username",
        ),
        (
            "credentials:\n  - domain: a.com\n    env: {A: 5}\n",
            3,
            "a number is not a field name",
            "name a field such as username",
        ),
        (
            "credentials:\n  - domain: a.com\n    env:\n      DEPLOY-TOKEN: password\n",
            4,
            '"DEPLOY-TOKEN" is not a valid variable name',
            "use letters, digits and _, not starting with a digit",
        ),
        (
            "credentials:\n  - domain: a.com\n    env: {1X: password}\n",
            3,
            '"1X" is not a valid variable name',
            "not starting with a digit",
        ),
        (
            "credentials:\n  - domain: a.com\n    env:\n      A: username\n      A: password\n",
            5,
            '"A" appears twice',
            "remove one (the other is on line 4)",
        ),
        (
            "credentials:\n  - domain: a.com\n    env: {TOKEN: password}\n"
            "  - domain: b.com\n    env:\n      TOKEN: password\n",
            6,
            "TOKEN is also set by the credential on line 2",
            "rename one of them",
        ),
        # env
        (
            "credentials: [{domain: a.com, env: {A: uri}}]\nenv: [PATH]\n",
            2,
            "env is a list",
            "make it a mapping",
        ),
        (
            "credentials: [{domain: a.com, env: {A: uri}}]\nenv:\n  inherits: [PATH]\n",
            3,
            'unknown key "inherits" in env',
            'did you mean "inherit"?',
        ),
        (
            "credentials: [{domain: a.com, env: {A: uri}}]\nenv:\n  inherit: PATH\n",
            3,
            "env.inherit is text",
            "make it a list, e.g. inherit: [PATH",
        ),
        (
            "credentials: [{domain: a.com, env: {A: uri}}]\nenv:\n  inherit:\n",
            3,
            "env.inherit is empty",
            "write inherit: [] to inherit nothing, or remove it for the default list",
        ),
        (
            "credentials: [{domain: a.com, env: {A: uri}}]\nenv:\n  inherit:\n    - PATH\n    - 42\n",
            5,
            "an entry of env.inherit is a number",
            "write a variable name or a glob",
        ),
        (
            "credentials: [{domain: a.com, env: {A: uri}}]\nenv:\n  inherit:\n    - PATH=/bin\n",
            4,
            '"PATH=/bin" is not a variable name or glob',
            "list names such as PATH",
        ),
        (
            "credentials: [{domain: a.com, env: {A: uri}}]\nenv:\n  set:\n    PORT: 8080\n",
            4,
            "PORT is a number to YAML, not text",
            'quote it: PORT: "8080"',
        ),
        (
            "credentials: [{domain: a.com, env: {A: uri}}]\nenv:\n  set:\n    DEBUG: yes\n",
            4,
            "DEBUG is true/false to YAML, not text",
            'quote it: DEBUG: "yes"',
        ),
        (
            "credentials: [{domain: a.com, env: {A: uri}}]\nenv:\n  set:\n    RATIO: 1.10\n",
            4,
            "RATIO is a number to YAML",
            'quote it: RATIO: "1.10"',
        ),
        (
            "credentials: [{domain: a.com, env: {A: uri}}]\nenv:\n  set:\n    EMPTY:\n",
            4,
            "EMPTY has no value",
            'write EMPTY: "" for an empty value',
        ),
        (
            "credentials: [{domain: a.com, env: {A: uri}}]\nenv:\n  set:\n    LIST: [a, b]\n",
            4,
            "LIST is a list",
            'write one text value: LIST: "..."',
        ),
        (
            "credentials: [{domain: a.com, env: {A: uri}}]\nenv:\n  set:\n    BAD-NAME: x\n",
            4,
            '"BAD-NAME" is not a valid variable name',
            "use letters, digits and _",
        ),
        (
            'credentials: [{domain: a.com, env: {A: uri}}]\nenv:\n  set:\n    Z: "a\\0b"\n',
            4,
            "Z contains a NUL byte",
            "remove it",
        ),
        # mask and durations
        (
            "credentials: [{domain: a.com, env: {A: uri}}]\nmask: maybe\n",
            2,
            "mask is text",
            "write mask: true",
        ),
        (
            "credentials: [{domain: a.com, env: {A: uri}}]\nmask: 1\n",
            2,
            "mask is a number",
            "write mask: true",
        ),
        (
            "credentials: [{domain: a.com, env: {A: uri}}]\ntimeout: 30x\n",
            2,
            'timeout "30x" is not a duration',
            "write a duration such as 500ms, 30s, 5m, 2h or 1h30m",
        ),
        (
            "credentials: [{domain: a.com, env: {A: uri}}]\ntimeout: -5s\n",
            2,
            'timeout "-5s" is not a duration',
            "write a duration",
        ),
        (
            "credentials: [{domain: a.com, env: {A: uri}}]\ntimeout: true\n",
            2,
            "timeout is true/false",
            "duration",
        ),
        (
            "credentials: [{domain: a.com, env: {A: uri}}]\ntimeout: 0s\n",
            2,
            "timeout is zero",
            "remove timeout:",
        ),
        (
            "credentials: [{domain: a.com, env: {A: uri}}]\nkill_grace: [5s]\n",
            2,
            "kill_grace is a list",
            "write a duration",
        ),
    ],
)
def test_refusals(here, text, line, what, fix):
    message = refusal(here, text)
    prefix, _, rest = message.partition(": ")
    assert prefix == f"profiles/deploy.yaml:{line}", message
    wrong, _, change = rest.partition(" — ")
    assert what in wrong, message
    assert fix in change, message


def test_not_utf8(here):
    path = here / "profiles" / "deploy.yaml"
    path.write_bytes(b"credentials:\n  - domain: a.com\n    env: {A: caf\xe9}\n")
    with pytest.raises(
        ProfileError, match=r"^profiles/deploy\.yaml:3: not UTF-8 text — save the file as UTF-8$"
    ):
        load(path)


def test_too_large(here):
    path = here / "profiles" / "deploy.yaml"
    path.write_bytes(b"#" * (lookup.MAX_PROFILE_BYTES + 1))
    with pytest.raises(
        ProfileError, match=r"^profiles/deploy\.yaml: larger than .* a profile is a short YAML file"
    ):
        load(path)


def test_missing_file_and_folder(here):
    with pytest.raises(ProfileError, match=r"^profiles/nope\.yaml: no such file — check the path$"):
        load(here / "profiles" / "nope.yaml")
    with pytest.raises(ProfileError, match=r"^profiles: not a regular file — "):
        load(here / "profiles")


# --- lookup ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("deploy", False),
        ("my-profile", False),
        ("deploy.yaml", True),
        ("deploy.yml", True),
        ("./deploy", True),
        ("ops/deploy", True),
        ("/etc/runwrap/deploy", True),
        ("deploy.json", False),
    ],
)
def test_is_path(name, expected):
    assert is_path(name) is expected


MINIMAL = "description: {}\ncredentials: [{{domain: a.com, env: {{A: username}}}}]\n"


def test_search_dirs_order(tmp_path):
    environ = {"RUNWRAP_PROFILES": "/one::rel:/two", "XDG_CONFIG_HOME": "/xdg", "HOME": "/home/u"}
    assert search_dirs(environ, tmp_path) == [
        Path("/one"),
        tmp_path / "rel",
        Path("/two"),
        tmp_path / "profiles",
        Path("/xdg/runwrap/profiles"),
    ]


def test_search_dirs_defaults_to_home_config(tmp_path):
    assert search_dirs({"HOME": "/home/u"}, tmp_path) == [
        tmp_path / "profiles",
        Path("/home/u/.config/runwrap/profiles"),
    ]
    # A relative XDG_CONFIG_HOME is ignored, as the XDG spec says.
    assert search_dirs({"HOME": "/home/u", "XDG_CONFIG_HOME": "cfg"}, tmp_path)[-1] == Path(
        "/home/u/.config/runwrap/profiles"
    )


def test_search_dirs_lists_a_folder_once(tmp_path):
    environ = {"RUNWRAP_PROFILES": f"{tmp_path}/profiles:profiles", "HOME": "/h"}
    assert search_dirs(environ, tmp_path) == [tmp_path / "profiles", Path("/h/.config/runwrap/profiles")]


@pytest.fixture
def layout(tmp_path):
    """Four places that all hold a profile `p`, and an environ that points at them."""
    places = {key: tmp_path / key for key in ("one", "two", "cwd/profiles", "xdg/runwrap/profiles")}
    for key, folder in places.items():
        write(folder, MINIMAL.format(key), "p.yaml")
    environ = {
        "RUNWRAP_PROFILES": f"{places['one']}:{places['two']}",
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "HOME": str(tmp_path / "home"),
    }
    return places, environ, tmp_path / "cwd"


def test_first_hit_wins_in_order(layout):
    places, environ, cwd = layout
    for key in ("one", "two", "cwd/profiles", "xdg/runwrap/profiles"):
        assert resolve("p", environ=environ, cwd=cwd) == places[key] / "p.yaml"
        assert find("p", environ=environ, cwd=cwd).description == key
        (places[key] / "p.yaml").unlink()
    with pytest.raises(ProfileError) as info:
        resolve("p", environ=environ, cwd=cwd)
    message = str(info.value)
    assert message.startswith('no profile named "p" — looked for p.yaml and p.yml in ')
    for folder in places.values():
        assert str(folder) in message
    assert "create it in one of them or pass a file path" in message


def test_yaml_before_yml_and_folders_are_not_profiles(tmp_path):
    folder = tmp_path / "profiles"
    write(folder, MINIMAL.format("yml"), "p.yml")
    assert resolve("p", environ={"HOME": "/h"}, cwd=tmp_path) == folder / "p.yml"
    write(folder, MINIMAL.format("yaml"), "p.yaml")
    assert resolve("p", environ={"HOME": "/h"}, cwd=tmp_path) == folder / "p.yaml"
    (folder / "q.yaml").mkdir()
    with pytest.raises(ProfileError, match='no profile named "q"'):
        resolve("q", environ={"HOME": "/h"}, cwd=tmp_path)


def test_path_forms(layout):
    places, environ, cwd = layout
    # A path is taken as it is, relative to cwd, and never searched for.
    assert resolve("profiles/p.yaml", environ=environ, cwd=cwd) == cwd / "profiles/p.yaml"
    assert resolve(str(places["two"] / "p.yaml"), environ=environ, cwd=cwd) == places["two"] / "p.yaml"
    write(cwd, MINIMAL.format("here"), "local.yml")
    assert find("local.yml", environ=environ, cwd=cwd).description == "here"
    with pytest.raises(ProfileError) as info:
        resolve("p.yaml", environ=environ, cwd=cwd)  # a path: not looked up in the folders
    assert str(info.value) == (
        f"p.yaml: does not exist (looked at {cwd / 'p.yaml'}) — give the path of a profile's .yaml file"
    )
    with pytest.raises(ProfileError, match=r"^profiles/: is a folder"):
        resolve("profiles/", environ=environ, cwd=cwd)


def test_empty_name_is_refused(tmp_path):
    with pytest.raises(ProfileError, match=r'^"" is not a profile name'):
        resolve("", environ={}, cwd=tmp_path)


def test_find_refuses_a_bad_profile_with_its_line(layout):
    places, environ, cwd = layout
    write(places["one"], "credentials:\n  - domain: a.com\n    env: {A: \"pass word\"}\n", "p.yaml")
    with pytest.raises(ProfileError, match=r':3: "pass word" is not a field name for A — name a field such as'):
        find("p", environ=environ, cwd=cwd)


def test_list_profiles(layout):
    places, environ, cwd = layout
    write(places["two"], MINIMAL.format("only in two"), "b.yml")
    write(places["xdg/runwrap/profiles"], MINIMAL.format("xdg a"), "a.yaml")
    write(places["cwd/profiles"], MINIMAL.format("cwd a"), "a.yaml")
    write(places["one"], "credentials: nope\n", "broken.yaml")
    write(places["one"], MINIMAL.format("hidden"), ".hidden.yaml")
    write(places["one"], "not a profile", "notes.txt")
    write(places["one"], MINIMAL.format("unreachable by name"), "x.yaml.yaml")
    assert list_profiles(environ, cwd) == [
        ("a", places["cwd/profiles"] / "a.yaml", "cwd a"),
        ("b", places["two"] / "b.yml", "only in two"),
        ("broken", places["one"] / "broken.yaml", "(invalid — see: runwrap profiles check broken)"),
        ("p", places["one"] / "p.yaml", "one"),
    ]


def test_list_profiles_with_no_folders(tmp_path):
    assert list_profiles({"HOME": str(tmp_path)}, tmp_path) == []


# --- the parsed-profile cache ------------------------------------------------------------------


def _wait_for_clock_past(folder: Path, ns: int) -> None:
    """Until the file system's clock has moved past `ns` (it ticks in coarse steps), with a deadline."""
    deadline = time.monotonic() + 5
    probe = folder / ".clock-probe"
    while time.monotonic() < deadline:
        probe.touch()
        moved = probe.stat().st_ctime_ns > ns
        probe.unlink()
        if moved:
            return
    raise AssertionError("the file system's clock did not move in 5 s")


def _entries(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.json")) if cache.exists() else []


def test_a_fresh_file_is_not_cached(tmp_path):
    # Racy-git rule: a file changed within the last 2 s could change again without its ctime moving.
    path = write(tmp_path / "profiles", MINIMAL.format("fresh"), "p.yaml")
    environ = {"RUNWRAP_HOME": str(tmp_path / "home")}
    assert find("p", environ=environ, cwd=tmp_path).description == "fresh"
    assert _entries(tmp_path / "home" / "cache" / "profiles") == []
    assert path.exists()


@pytest.fixture
def settled(monkeypatch):
    monkeypatch.setattr(profile_cache, "_SETTLE_NS", 0)


def test_cache_hit_and_every_change_misses(tmp_path, settled):
    path = write(tmp_path / "profiles", MINIMAL.format("first"), "p.yaml")
    environ = {"RUNWRAP_HOME": str(tmp_path / "home")}
    cache = tmp_path / "home" / "cache" / "profiles"
    original = find("p", environ=environ, cwd=tmp_path)
    (entry,) = _entries(cache)
    assert (cache.stat().st_mode & 0o777, entry.stat().st_mode & 0o777) == (0o700, 0o600)
    assert (tmp_path / "home").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "home" / "cache").stat().st_mode & 0o777 == 0o700

    # A hit returns the same profile; proven by an entry edited behind runwrap's back being taken.
    assert find("p", environ=environ, cwd=tmp_path) == original
    data = json.loads(entry.read_text())
    data["profile"]["description"] = "from the cache"
    entry.write_text(json.dumps(data))
    assert find("p", environ=environ, cwd=tmp_path).description == "from the cache"

    # The file rewritten in place, same size, its mtime put back: the ctime moved, so a miss.
    info = path.stat()
    _wait_for_clock_past(path.parent, info.st_ctime_ns)
    path.write_text(MINIMAL.format("other"))
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert path.stat().st_size == info.st_size and path.stat().st_mtime_ns == info.st_mtime_ns
    assert find("p", environ=environ, cwd=tmp_path).description == "other"


def test_cache_is_ignored_unless_private(tmp_path, settled):
    write(tmp_path / "profiles", MINIMAL.format("real"), "p.yaml")
    environ = {"RUNWRAP_HOME": str(tmp_path / "home")}
    cache = tmp_path / "home" / "cache" / "profiles"
    find("p", environ=environ, cwd=tmp_path)
    (entry,) = _entries(cache)
    data = json.loads(entry.read_text())
    data["profile"]["description"] = "planted"
    entry.write_text(json.dumps(data))
    cache.chmod(0o755)
    assert find("p", environ=environ, cwd=tmp_path).description == "real"
    cache.chmod(0o700)
    entry.chmod(0o644)
    assert find("p", environ=environ, cwd=tmp_path).description == "real"


def test_a_broken_cache_entry_is_a_miss(tmp_path, settled):
    write(tmp_path / "profiles", MINIMAL.format("real"), "p.yaml")
    environ = {"RUNWRAP_HOME": str(tmp_path / "home")}
    find("p", environ=environ, cwd=tmp_path)
    (entry,) = _entries(tmp_path / "home" / "cache" / "profiles")
    for garbage in (
        "{not json",
        '{"format": 1}',
        "[]",
        json.dumps({**json.loads(entry.read_text()), "profile": {}}),
    ):
        entry.write_text(garbage)
        assert find("p", environ=environ, cwd=tmp_path).description == "real"


def test_invalid_profiles_are_never_cached(tmp_path, settled):
    write(tmp_path / "profiles", "credentials: []\n", "p.yaml")
    environ = {"RUNWRAP_HOME": str(tmp_path / "home")}
    for _ in range(2):
        with pytest.raises(ProfileError, match="credentials is an empty list"):
            find("p", environ=environ, cwd=tmp_path)
    assert _entries(tmp_path / "home" / "cache" / "profiles") == []
