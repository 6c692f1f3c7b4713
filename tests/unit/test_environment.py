"""The child's environment: exactly the allow-list, then env.set, then the credentials."""

from __future__ import annotations

import os

import pytest

from runwrap.credential import FIELDS
from runwrap.environment import (
    DEFAULT_INHERIT,
    MAX_ARG_STRLEN,
    build,
    to_exec_env,
)
from runwrap.errors import EXIT_RUNWRAP, RunwrapError, UsageError
from runwrap.run_flags import env_all, parse_env_flags
from runwrap.secret import Secret

PARENT = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/home/ada",
    "USER": "ada",
    "LOGNAME": "ada",
    "SHELL": "/bin/bash",
    "LANG": "en_GB.UTF-8",
    "LC_ALL": "C.UTF-8",
    "LC_CTYPE": "en_GB.UTF-8",
    "TERM": "xterm-256color",
    "COLORTERM": "truecolor",
    "TZ": "Europe/London",
    "TMPDIR": "/tmp/ada",
    # None of these may reach the child unless a profile lists them.
    "AWS_SECRET_ACCESS_KEY": "aws-parent-secret",
    "AWS_PROFILE": "prod",
    "LD_PRELOAD": "/tmp/evil.so",
    "BW_SESSION": "bw-session-secret",
    "SSH_AUTH_SOCK": "/run/ssh.sock",
    "RUNWRAP_HOME": "/home/ada/.rw",
    "RUNWRAP_PROFILES": "/etc/profiles",
    "lc_all": "lower case is another name",
    "Path": "so is this",
    "PATHX": "and this",
    "DISPLAY": ":0",
}

DEFAULT_CHILD = {
    name: PARENT[name]
    for name in (
        "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "LC_CTYPE",
        "TERM", "COLORTERM", "TZ", "TMPDIR",
    )
}  # fmt: skip


def test_default_allow_list_is_exactly_the_spec():
    assert DEFAULT_INHERIT == (
        "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_*", "TERM", "COLORTERM", "TZ", "TMPDIR",
    )  # fmt: skip


def test_default_inherit_passes_exactly_the_allow_list():
    assert build(PARENT, None, {}, {}) == DEFAULT_CHILD


def test_globs_are_case_sensitive_and_whole_name():
    env = build(PARENT, ["LC_*", "PATH"], {}, {})
    assert env == {"LC_ALL": "C.UTF-8", "LC_CTYPE": "en_GB.UTF-8", "PATH": "/usr/bin:/bin"}


def test_empty_inherit_passes_nothing_from_the_parent():
    assert build(PARENT, [], {"A": "1"}, {}) == {"A": "1"}


def test_listed_names_and_globs_do_pass():
    env = build(PARENT, ["AWS_*", "LD_PRELOAD", "RUNWRAP_*", "BW_SESSION"], {}, {})
    assert env == {
        "AWS_SECRET_ACCESS_KEY": "aws-parent-secret",
        "AWS_PROFILE": "prod",
        "LD_PRELOAD": "/tmp/evil.so",
        "BW_SESSION": "bw-session-secret",
        "RUNWRAP_HOME": "/home/ada/.rw",
        "RUNWRAP_PROFILES": "/etc/profiles",
    }


def test_set_overrides_inherited_and_credentials_win():
    token = Secret("s3cr3t-token")
    user = Secret("deployer")
    env = build(
        PARENT,
        ["PATH", "HOME", "DEPLOY_*"],
        {"HOME": "/srv/app", "DEPLOY_ENV": "production", "DEPLOY_TOKEN": "from-set"},
        {"DEPLOY_TOKEN": token, "PATH": user},
    )
    assert env == {"PATH": user, "HOME": "/srv/app", "DEPLOY_ENV": "production", "DEPLOY_TOKEN": token}
    # The Secret objects themselves, not copies of their values.
    assert env["DEPLOY_TOKEN"] is token
    assert env["PATH"] is user


def test_parent_secrets_never_appear_unless_listed():
    env = build(PARENT, None, {"X": "y"}, {"TOKEN": Secret("t")})
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "LD_PRELOAD", "BW_SESSION", "SSH_AUTH_SOCK",
                 "RUNWRAP_HOME", "RUNWRAP_PROFILES", "DISPLAY"):  # fmt: skip
        assert name not in env
    assert set(env) == set(DEFAULT_CHILD) | {"X", "TOKEN"}


def test_awkward_values_survive_byte_for_byte():
    parent = {"LANG": "fr_FR.UTF-8", "TZ": "a=b=c"}
    values = {"MULTI": "line one\nline two\r\n", "EQ": "k=v==", "UNI": "naïve — 日本語 🚀", "EMPTY": ""}
    secret = Secret("pä=ss\nwörd")
    env = build(parent, None, values, {"SECRET": secret})
    assert env == {**parent, **values, "SECRET": secret}
    assert to_exec_env(env) == {
        b"LANG": b"fr_FR.UTF-8",
        b"TZ": b"a=b=c",
        b"MULTI": b"line one\nline two\r\n",
        b"EQ": b"k=v==",
        b"UNI": "naïve — 日本語 🚀".encode(),
        b"EMPTY": b"",
        b"SECRET": "pä=ss\nwörd".encode(),
    }


def test_undecodable_parent_bytes_round_trip():
    # os.environ holds bytes that are not UTF-8 as surrogate escapes; execve must get the bytes back.
    raw = b"caf\xe9"
    parent = {"LANG": os.fsdecode(raw)}
    assert to_exec_env(build(parent, None, {}, {})) == {b"LANG": raw}


def _refused(parent=None, inherit=None, set_=None, injected=None) -> str:
    with pytest.raises(RunwrapError) as info:
        build(parent or {}, inherit, set_ or {}, injected or {})
    assert info.value.exit_status == EXIT_RUNWRAP == 125
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("where", ["set", "injected", "parent"])
def test_nul_is_refused_naming_the_variable_not_the_value(where):
    value = "hunter2\0tail"
    if where == "set":
        message = _refused(set_={"DB_PASS": value})
    elif where == "injected":
        message = _refused(injected={"DB_PASS": Secret(value)})
    else:
        message = _refused(parent={"DB_PASS": value}, inherit=["DB_*"])
    assert '"DB_PASS"' in message
    assert "NUL" in message
    assert "hunter2" not in message and "tail" not in message


@pytest.mark.parametrize("name", ["1ABC", "A-B", "A B", "A=B", "", "NAÏVE", "A\0B", "A.B"])
@pytest.mark.parametrize("where", ["set", "injected"])
def test_bad_names_are_refused(name, where):
    if where == "set":
        message = _refused(set_={name: "topsecretvalue"})
    else:
        message = _refused(injected={name: Secret("topsecretvalue")})
    assert "topsecretvalue" not in message
    assert "\0" not in message
    assert "variable name" in message
    if name and "\0" not in name:
        assert f'"{name}"' in message


def test_inherited_odd_names_pass_when_listed():
    # bash exports functions as BASH_FUNC_name%%; such names are the parent's, and execve carries them.
    parent = {"BASH_FUNC_greet%%": "() {  echo hi\n}", "PATH": "/bin"}
    assert build(parent, ["BASH_FUNC_*", "PATH"], {}, {}) == parent


def test_inherited_name_execve_cannot_carry_is_refused():
    message = _refused(parent={"A=B": "x"}, inherit=["A*"])
    assert '"A=B"' in message and "inherited" in message


@pytest.mark.parametrize("make", [str, Secret], ids=["set", "secret"])
def test_value_length_limit_is_max_arg_strlen(make):
    name = "BIG"
    fits = "x" * (MAX_ARG_STRLEN - 1 - len(name) - 1)  # NAME=value is 131071 bytes: allowed
    if make is str:
        assert build({}, [], {name: fits}, {})[name] == fits
        message = _refused(set_={name: fits + "y"})
    else:
        assert len(build({}, [], {}, {name: Secret(fits)})[name]) == len(fits)
        message = _refused(injected={name: Secret(fits + "y")})
    assert '"BIG"' in message and "131072" in message and "MAX_ARG_STRLEN" in message
    assert "xxxx" not in message


def test_limit_counts_bytes_not_characters():
    value = "é" * (MAX_ARG_STRLEN // 2)  # 65536 characters, 131072 bytes
    assert len(value) < MAX_ARG_STRLEN
    assert '"E"' in _refused(set_={"E": value})


def test_total_near_arg_max_is_refused_naming_the_largest():
    arg_max = os.sysconf("SC_ARG_MAX")
    chunk = "v" * 100_000
    values = {f"VAR_{i}": chunk for i in range(arg_max // 100_000)}
    values["HUGE_ONE"] = chunk + "w" * 1000
    message = _refused(set_=values)
    assert "ARG_MAX" in message and '"HUGE_ONE"' in message
    assert "vvvv" not in message
    # Well under the limit is fine.
    assert len(build({}, [], dict(list(values.items())[:5]), {})) == 5


def test_to_exec_env_gives_bytes_and_leaves_the_secret_intact():
    secret = Secret(b"tok\xffen")
    env = to_exec_env({"A": "b", "TOKEN": secret})
    assert env == {b"A": b"b", b"TOKEN": b"tok\xffen"}
    assert secret.reveal_bytes() == b"tok\xffen"


def test_env_all_is_aacs_mapping():
    assert env_all() == {
        "AAC_USERNAME": "username",
        "AAC_PASSWORD": "password",
        "AAC_TOTP": "totp",
        "AAC_URI": "uri",
        "AAC_NOTES": "notes",
        "AAC_DOMAIN": "domain",
        "AAC_CREDENTIAL_ID": "credential_id",
    }
    assert env_all("GH_") == {f"GH_{field.upper()}": field for field in FIELDS}
    assert env_all("")["USERNAME"] == "username"


@pytest.mark.parametrize("prefix", ["1X_", "A-", "A B"])
def test_env_all_refuses_a_prefix_that_makes_bad_names(prefix):
    with pytest.raises(UsageError) as info:
        env_all(prefix)
    assert f'"{prefix}"' in str(info.value) and "--prefix" in str(info.value)
    assert info.value.exit_status == 125


def test_parse_env_flags():
    assert parse_env_flags([]) == {}
    assert parse_env_flags(["GH_USER=username", "GH_TOKEN=password", "CODE=totp"]) == {
        "GH_USER": "username",
        "GH_TOKEN": "password",
        "CODE": "totp",
    }


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        ("GH_TOKEN", "write VAR=FIELD"),
        ("GH-TOKEN=password", "valid variable name"),
        ("=password", "valid variable name"),
        ("GH_TOKEN=pass word", "use one of: username, password, totp, uri, notes, domain, credential_id"),
        ("GH_TOKEN=9lives", "or a key the item has (api_key)"),
        ("GH_TOKEN=", "use one of:"),
    ],
)
def test_parse_env_flags_refuses_bad_forms(flag, expected):
    with pytest.raises(UsageError) as info:
        parse_env_flags([flag])
    assert expected in str(info.value)


def test_parse_env_flags_refuses_a_variable_given_twice():
    with pytest.raises(UsageError, match="GH_TOKEN is given twice"):
        parse_env_flags(["GH_TOKEN=password", "GH_TOKEN=username"])
