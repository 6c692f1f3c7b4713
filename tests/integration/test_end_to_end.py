"""`runwrap PROFILE -- cmd` end to end: real listener, real Noise session, real children."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runwrap.testing.listener import RunningListener, runwrap_executable
from tests.envdump import ENV_DUMPER, read_env_dump

EXAMPLE = {
    "github.com": ("8b4c5e0a-0000-4000-8000-000000000001", "example", "alligator5"),
    "example.com": ("8b4c5e0a-0000-4000-8000-000000000002", "demo", "correct-horse-battery-staple"),
    "test.com": ("8b4c5e0a-0000-4000-8000-000000000003", "tester", "hunter2-but-longer"),
}

PROFILE = """\
description: env test
credentials:
  - domain: github.com
    env:
      GH_USER: username
      GH_TOKEN: password
  - id: 8b4c5e0a-0000-4000-8000-000000000003
    env:
      TEST_TOTP: totp
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def parent_env(listener: RunningListener, **extra: str) -> dict[str, str]:
    env = dict(listener.env)
    env.update({
        "HOME": "/home/somebody", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TERM": "xterm-256color",
        "AWS_SECRET_ACCESS_KEY": "parent-aws-secret", "AWS_PROFILE": "prod", "SSH_AUTH_SOCK": "/tmp/agent.sock",
        "BW_SESSION": "parent-bw-session", "LD_PRELOAD": "", "RUNWRAP_PROFILES": "/nonexistent",
        "UNRELATED": "x",
    })
    env.update(extra)
    return env


def test_child_environment_is_exactly_allow_list_plus_credentials(listener, tmp_path, python):
    profile = write(tmp_path / "envtest.yaml", PROFILE)
    dump = tmp_path / "env.bin"
    env = parent_env(listener)
    result = subprocess.run([runwrap_executable(), str(profile), "--", python, "-c", ENV_DUMPER, str(dump)],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    child = read_env_dump(dump)
    allowed = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "TERM", "COLORTERM", "TZ", "TMPDIR")
    expected = {k: v for k, v in env.items() if k in allowed or k.startswith("LC_")}
    expected.update({"GH_USER": "example", "GH_TOKEN": "alligator5"})
    totp = child.pop("TEST_TOTP")
    assert totp.isdigit() and len(totp) == 6
    assert child == expected
    for leaked in ("AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "SSH_AUTH_SOCK", "BW_SESSION", "LD_PRELOAD",
                   "RUNWRAP_HOME", "RUNWRAP_PROFILES", "UNRELATED"):
        assert leaked not in child


def test_injected_values_are_masked_in_piped_output(listener, tmp_path):
    profile = write(tmp_path / "p.yaml", PROFILE)
    result = listener.run(str(profile), "--", "sh", "-c", 'echo "token=$GH_TOKEN"; echo "user=$GH_USER" >&2',
                          check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "token=***\n"
    assert "user=***" in result.stderr
    assert "alligator5" not in result.stdout + result.stderr


@pytest.mark.parametrize("domain", sorted(EXAMPLE))
def test_connect_json_for_each_example_item(listener, domain):
    result = listener.run("connect", "--domain", domain, "--output", "json")
    body = json.loads(result.stdout)
    item_id, username, password = EXAMPLE[domain]
    assert body["success"] is True
    cred = body["credential"]
    assert set(cred) == {"username", "password", "totp", "uri", "notes", "domain", "credential_id"}
    assert (cred["credential_id"], cred["username"], cred["password"], cred["domain"]) == (
        item_id, username, password, domain)
    if domain == "test.com":
        assert cred["totp"].isdigit() and len(cred["totp"]) == 6 and cred["totp"] != "JBSWY3DPEHPK3PXP"
    else:
        assert cred["totp"] is None


def test_connect_by_id_and_subdomain(listener):
    body = json.loads(listener.run("connect", "--id", EXAMPLE["example.com"][0], "--output", "json").stdout)
    assert body["credential"]["username"] == "demo"
    body = json.loads(listener.run("connect", "--domain", "api.github.com", "--output", "json").stdout)
    assert body["credential"]["domain"] == "github.com"


def test_connect_not_found_is_exit_4_with_aac_json(listener):
    result = listener.run("connect", "--domain", "unknown.example.org", "--output", "json", check=False)
    assert result.returncode == 4
    body = json.loads(result.stdout)
    assert body == {"success": False, "error": {"message": body["error"]["message"], "code": "not_found"}}


@pytest.mark.parametrize("status", [0, 1, 2, 127, 255])
def test_exit_status_is_the_childs(listener, tmp_path, status):
    profile = write(tmp_path / "p.yaml", PROFILE)
    result = listener.run(str(profile), "--", "sh", "-c", f"exit {status}", check=False)
    assert result.returncode == status, result.stderr


def test_death_by_term_is_reproduced(listener, tmp_path):
    profile = write(tmp_path / "p.yaml", PROFILE)
    result = listener.run(str(profile), "--", "sh", "-c", "kill -TERM $$", check=False)
    assert result.returncode == -signal.SIGTERM


@pytest.mark.parametrize("closed", [">&-", "2>&-", ">&- 2>&-"])
def test_a_closed_stdout_or_stderr_keeps_the_exit_status(listener, tmp_path, closed):
    profile = write(tmp_path / "p.yaml", PROFILE)
    runwrap = shlex.quote(runwrap_executable())
    script = (f"{runwrap} {shlex.quote(str(profile))} -- sh -c 'exit 7' {closed}; echo $?; "
              f"{runwrap} {shlex.quote(str(profile))} -- sh -c 'kill -TERM $$' {closed}; echo $?")
    result = subprocess.run(["sh", "-c", script], env=listener.env, capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["7", str(128 + signal.SIGTERM)], result.stderr
    assert "Traceback" not in result.stderr


def test_run_uses_aac_flags(listener, tmp_path, python):
    dump = tmp_path / "env.bin"
    listener.run("run", "--domain", "example.com", "--env", "U=username", "--env", "P=password", "--",
                 python, "-c", ENV_DUMPER, str(dump))
    child = read_env_dump(dump)
    assert (child["U"], child["P"]) == ("demo", "correct-horse-battery-staple")
    listener.run("run", "--domain", "test.com", "--env-all", "--", python, "-c", ENV_DUMPER, str(dump))
    child = read_env_dump(dump)
    assert child["AAC_USERNAME"] == "tester" and child["AAC_PASSWORD"] == "hunter2-but-longer"
    assert child["AAC_TOTP"].isdigit() and "AAC_NOTES" not in child


BAD_PROFILES = {
    "yaml_error": ("credentials:\n  - domain: github.com\n    env: [unclosed\n", "bad.yaml:4: invalid YAML"),
    "bad_field_name": (
        "credentials:\n  - domain: github.com\n    env:\n      T: pass word\n",
        'bad.yaml:4: "pass word" is not a field name',
    ),
}


def test_a_field_the_item_lacks_is_refused_naming_the_fields_it_has(listener, tmp_path):
    # Any key is a field, so a typo is found at fetch time; the error lists names, never values.
    profile = write(tmp_path / "typo.yaml", "credentials:\n  - domain: github.com\n    env:\n      T: pasword\n")
    marker = tmp_path / "started"
    result = listener.run(str(profile), "--", "touch", str(marker), check=False)
    assert result.returncode == 125
    assert result.stderr.strip().splitlines() == [
        f"runwrap: {profile}:2: the item for domain github.com has no pasword value (it has: username, password, "
        "uri, domain, credential_id); remove T or pick another field"]
    assert "alligator5" not in result.stderr and not marker.exists()


@pytest.mark.parametrize("case", sorted(BAD_PROFILES))
def test_bad_profile_is_refused_before_anything_runs(listener, tmp_path, case):
    text, needle = BAD_PROFILES[case]
    profile = write(tmp_path / "bad.yaml", text)
    marker = tmp_path / "started"
    result = listener.run(str(profile), "--", "touch", str(marker), check=False)
    assert result.returncode == 125
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("runwrap: ") and needle in lines[0], result.stderr
    assert str(profile.name) in lines[0]
    assert not marker.exists()


def test_missing_profile(listener, tmp_path):
    marker = tmp_path / "started"
    result = listener.run("no-such-profile", "--", "touch", str(marker), check=False, cwd=tmp_path)
    assert result.returncode == 125
    assert len(result.stderr.strip().splitlines()) == 1 and "no-such-profile" in result.stderr
    assert not marker.exists()


def test_unknown_domain_starts_no_child(listener, tmp_path):
    profile = write(tmp_path / "p.yaml", "credentials:\n  - domain: nowhere.invalid\n    env:\n      X: password\n")
    marker = tmp_path / "started"
    result = listener.run(str(profile), "--", "touch", str(marker), check=False)
    assert result.returncode == 125
    assert len(result.stderr.strip().splitlines()) == 1 and "nowhere.invalid" in result.stderr
    assert not marker.exists()


def test_command_not_found_is_127_and_fetches_nothing(listener, tmp_path):
    profile = write(tmp_path / "p.yaml", PROFILE)
    before = len(listener.audit_events())
    result = listener.run(str(profile), "--", "no-such-command-xyz", check=False)
    assert result.returncode == 127
    assert "no-such-command-xyz" in result.stderr
    assert len(listener.audit_events()) == before


def test_listener_not_running(tmp_path):
    with RunningListener() as running:
        running.pair()
        running.stop()
        profile = write(tmp_path / "p.yaml", PROFILE)
        marker = tmp_path / "started"
        result = running.run(str(profile), "--", "touch", str(marker), check=False)
        assert result.returncode == 125
        assert len(result.stderr.strip().splitlines()) == 1 and "cannot reach the listener" in result.stderr
        assert not marker.exists()
        connect = running.run("connect", "--domain", "github.com", "--output", "json", check=False)
        assert connect.returncode == 2
        assert json.loads(connect.stdout)["error"]["code"] == "connection_failed"


def test_version_help_and_completion(listener):
    assert listener.run("--version").stdout.strip().startswith("runwrap ")
    help_text = listener.run("--help").stdout
    for word in ("listen", "invite", "pair", "connect", "run", "profiles", "Examples"):
        assert word in help_text
    env = dict(listener.env, _RUNWRAP_COMPLETE="complete_bash", COMP_WORDS="runwrap pe", COMP_CWORD="1")
    completion = subprocess.run([runwrap_executable()], env=env, capture_output=True, text=True, timeout=30)
    assert "peers" in completion.stdout


def test_secrets_never_in_argv_or_files(listener, tmp_path):
    profile = write(tmp_path / "p.yaml", PROFILE)
    listener.run(str(profile), "--", "true")
    for path in listener.home.rglob("*"):
        if path.is_file():
            assert b"alligator5" not in path.read_bytes(), path
            assert (path.stat().st_mode & 0o077) == 0, path
    assert (os.stat(listener.home).st_mode & 0o077) == 0


# Everything `runwrap PROFILE -- cmd` may import beyond what `python -c pass` imports, by why (README,
# "Performance": what the exec path imports is its start-up time). A new import fails this test:
# keep it off the exec path (import it where it is used), or add it here with its reason and cost.
# Union over Python 3.10 to 3.13.
EXEC_PATH_MAY_IMPORT = {
    # runwrap's exec path: the lean parser, the profile cache, the consumer, the wire, the supervisor
    "runwrap", "runwrap.__main__", "runwrap.code_cache", "runwrap.cli", "runwrap.cli.exec_args", "runwrap.run",
    "runwrap.errors",
    "runwrap.record", "runwrap.secret", "runwrap.credential", "runwrap.environment", "runwrap.durations",
    "runwrap.paths", "runwrap.linux", "runwrap.profile", "runwrap.profile.model", "runwrap.profile.lookup",
    "runwrap.profile.cache", "runwrap.profile.files", "runwrap.consumer", "runwrap.consumer.client",
    "runwrap.consumer.connections", "runwrap.json_codec", "runwrap.shares",
    "runwrap.wire", "runwrap.wire.framing", "runwrap.wire.messages", "runwrap.wire.noise_ik",
    "runwrap.wire.address", "runwrap.wire.identity", "runwrap.supervise", "runwrap.supervise.hardening",
    "runwrap.supervise.command", "runwrap.supervise.supervisor", "runwrap.supervise.child",
    "runwrap.supervise.reaper", "runwrap.supervise.signals",
    "runwrap.supervise.streams", "runwrap.supervise.launch", "runwrap.supervise.fileset", "runwrap.supervise.mask",
    "runwrap.supervise.mask_lines", "runwrap.supervise.mask_patterns", "runwrap.supervise.maskviews",
    "runwrap.supervise.memfind",
    # `from __future__ import annotations` (~0.1 ms); no typing, re, enum, functools, collections,
    # contextlib, json, struct or ctypes (each 1-10 ms): annotations sit under `TYPE_CHECKING = False`
    "__future__",
    # the handshake: runwrap's own IK initiator (wire.noise_ik) on X25519 and ChaCha20-Poly1305 from
    # cryptography's Rust bindings, and BLAKE2s without hashlib; cryptography's package imports `types`
    "cryptography", "cryptography.__about__", "cryptography.hazmat", "cryptography.hazmat.bindings",
    "cryptography.hazmat.bindings._rust", "_cffi_backend", "_blake2", "types",
    # JSON through the C accelerator alone (runwrap.json_codec): message headers, key and connections
    # files, the profile cache
    "_json",
    # libc through _ctypes (runwrap.linux): prctl (not dumpable, subreaper), the signalfd, wiping bytes,
    # rlimits (not the resource module)
    "_ctypes",
    # the C socket and the C signal module (not socket.py's or signal.py's enums), and the
    # supervisor's poll; not fcntl (one regular file for stdout and stderr only), binascii (values
    # over 768 bytes only) or bisect (maskviews.bisect_right)
    "_socket", "_signal", "select", "errno",
    # built in: the collector is off while runwrap starts (runwrap.__main__)
    "gc",
}


def _imports(stderr: str) -> set[str]:
    return {line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


def test_the_exec_path_imports_only_what_it_is_allowed(listener, tmp_path):
    profile = write(tmp_path / "p.yaml", PROFILE)
    env = {**listener.env, "PYTHONPROFILEIMPORTTIME": "1"}
    # The parsed profile is cached only once the file is 2 s old (a later edit must change its ctime).
    deadline = time.monotonic() + 20
    while True:
        # Without its code bundle, so every module is imported and logged (tests/integration/test_code_cache.py
        # checks that a launch from the bundle imports the same libraries).
        shutil.rmtree(listener.home / "cache" / "code", ignore_errors=True)
        result = listener.run(str(profile), "--", "true", env=env)
        imported = _imports(result.stderr)
        if "yaml" not in imported or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    floor = _imports(subprocess.run([sys.executable, "-c", "pass"], env=env, capture_output=True, text=True,
                                    check=True).stderr)
    # it is the exec path's log
    assert "runwrap.supervise.supervisor" in imported and "runwrap.wire.noise_ik" in imported
    # the consumer runs its own IK initiator (wire.noise_ik): noiseprotocol is the listener's
    assert sorted(m for m in imported if m.split(".")[0] == "noise" or m == "runwrap.wire.noise_session") == []
    assert sorted(imported - floor - EXEC_PATH_MAY_IMPORT) == []
