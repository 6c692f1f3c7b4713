"""The exec path's code bundle (runwrap.code_cache) with the installed runwrap and a real listener.

A launch with no bundle imports as usual and leaves one in the home's cache; the next launch takes
every runwrap module from it (so `-X importtime`, which logs only imports the import system does,
shows none of them), and a bundle that is damaged, stale, not private or the leftover of an unusual
run is never run.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

import runwrap
from runwrap.testing.listener import RunningListener

PROFILE = "credentials:\n  - domain: github.com\n    env:\n      GH_TOKEN: password\n"
BOOT = {"runwrap", "runwrap.__main__", "runwrap.code_cache"}  # imported before the bundle can run
SOURCES = Path(runwrap.__file__).parent


def _imports(stderr: str) -> set[str]:
    return {line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


def _settled(folder: Path) -> None:
    """Wait (at most ~2 s) until every source of runwrap changed over 2 s ago: only then is it bundled."""
    newest = max(max(path.stat().st_ctime, path.stat().st_mtime) for path in folder.rglob("*.py"))
    time.sleep(max(0.0, newest + 2.1 - time.time()))


@pytest.fixture
def home(listener: RunningListener, tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A consumer home of its own (an empty cache), and a profile file already cached as parsed."""
    consumer = listener.paired_home(f"cc{os.getpid()}-{time.monotonic_ns()}")
    env = {**listener.env, "RUNWRAP_HOME": str(consumer), "PYTHONPROFILEIMPORTTIME": "1"}
    profile = tmp_path / "p.yaml"
    profile.write_text(PROFILE)
    os.utime(profile, (time.time() - 60, time.time() - 60))
    time.sleep(2.1)  # the profile cache takes the file only once its ctime is 2 s old
    _settled(SOURCES)
    return env, profile


def _launch(listener: RunningListener, env: dict[str, str], profile: Path, *command: str) -> tuple[str, set[str]]:
    result = listener.run(str(profile), "--", *(command or ("sh", "-c", 'echo "t=$GH_TOKEN"')), env=env)
    return result.stdout, _imports(result.stderr)


def _bundles(env: dict[str, str]) -> list[Path]:
    return sorted((Path(env["RUNWRAP_HOME"]) / "cache" / "code").glob("*.bin"))


def _bundled(listener: RunningListener, env: dict[str, str], profile: Path) -> Path:
    """Two launches (the first may still parse the profile), and the bundle the second one wrote."""
    _launch(listener, env, profile)
    _launch(listener, env, profile)
    (bundle,) = _bundles(env)
    return bundle


def _runwrap_modules(imported: set[str]) -> set[str]:
    return {name for name in imported if name.split(".")[0] == "runwrap"}


def test_a_second_launch_takes_runwrap_from_the_bundle_and_imports_nothing_else(listener, home):
    env, profile = home
    _launch(listener, env, profile)  # may still parse the profile: learns nothing then
    out, first = _launch(listener, env, profile)
    assert out == "t=***\n"
    assert "yaml" not in first
    assert "runwrap.supervise.supervisor" in first  # this one imported the usual way
    (bundle,) = _bundles(env)
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o600
    assert stat.S_IMODE(bundle.parent.stat().st_mode) == 0o700
    out, second = _launch(listener, env, profile)
    assert out == "t=***\n"
    assert _runwrap_modules(second) == BOOT
    assert second - _runwrap_modules(second) == first - _runwrap_modules(first)  # the same libraries
    assert _bundles(env) == [bundle]


def test_the_supervisor_runs_late_while_the_listener_answers_the_handshake(listener, home):
    import marshal

    env, profile = home
    bundle = _bundled(listener, env, profile)
    _header, entries = marshal.loads(bundle.read_bytes())
    late = {name for name, *_, is_late in entries if is_late}
    early = {name for name, *_, is_late in entries if not is_late}
    assert {"runwrap.consumer.client", "runwrap.wire.noise_ik", "runwrap.profile.cache"} <= early
    assert {"runwrap.supervise.supervisor", "runwrap.supervise.fileset"} <= late
    assert "runwrap.supervise.mask" in late | early


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "world-readable", "symlink"])
def test_a_bad_bundle_is_never_run_and_is_replaced(listener, home, damage):
    env, profile = home
    bundle = _bundled(listener, env, profile)
    data = bundle.read_bytes()
    if damage == "garbage":
        bundle.write_bytes(os.urandom(len(data)))
    elif damage == "truncated":
        bundle.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        bundle.write_bytes(b"")
    elif damage == "world-readable":
        bundle.chmod(0o644)
    else:
        elsewhere = bundle.parent.parent / "elsewhere.bin"
        elsewhere.write_bytes(data)
        elsewhere.chmod(0o600)
        bundle.unlink()
        bundle.symlink_to(elsewhere)
    out, imported = _launch(listener, env, profile)
    assert out == "t=***\n"
    assert "runwrap.supervise.supervisor" in imported  # imported, not taken from the bad bundle
    assert stat.S_ISREG(bundle.lstat().st_mode) and stat.S_IMODE(bundle.stat().st_mode) == 0o600
    out, imported = _launch(listener, env, profile)
    assert out == "t=***\n"
    assert _runwrap_modules(imported) == BOOT


def test_a_bundle_in_a_folder_others_can_write_is_not_run(listener, home):
    env, profile = home
    bundle = _bundled(listener, env, profile)
    bundle.parent.chmod(0o770)
    try:
        _out, imported = _launch(listener, env, profile)
        assert "runwrap.supervise.supervisor" in imported
        assert stat.S_IMODE(bundle.parent.stat().st_mode) == 0o770  # not ours to change back
    finally:
        bundle.parent.chmod(0o700)


def test_a_bundle_of_other_sources_is_stale(listener, home, tmp_path):
    """A bundle's key names each source's inode, size and times: one that no longer matches is a miss."""
    import marshal

    env, profile = home
    bundle = _bundled(listener, env, profile)
    header, entries = marshal.loads(bundle.read_bytes())
    name, source, is_package, key, code, late = entries[0]
    entries[0] = (name, source, is_package, [key[0], key[1], key[2] - 1, key[3]], code, late)  # an older mtime
    bundle.write_bytes(marshal.dumps([header, entries]))
    _out, imported = _launch(listener, env, profile)
    assert name in imported
    _out, imported = _launch(listener, env, profile)
    assert _runwrap_modules(imported) == BOOT


def test_a_launch_that_reads_yaml_adds_nothing_to_the_bundle(listener, home, tmp_path):
    env, profile = home
    bundle = _bundled(listener, env, profile)
    before = bundle.read_bytes()
    fresh = tmp_path / "fresh.yaml"  # too new to be cached: this launch parses YAML
    fresh.write_text(PROFILE)
    _out, imported = _launch(listener, env, fresh)
    assert "yaml" in imported and "runwrap.profile.reader" in imported
    assert bundle.read_bytes() == before
    _out, imported = _launch(listener, env, profile)
    assert "yaml" not in imported


def test_a_module_the_bundle_lacks_is_imported_then_added(listener, home):
    """--dry-run imports runwrap.dry_run, which the first bundle does not hold."""
    env, profile = home
    _launch(listener, env, profile)
    _launch(listener, env, profile)
    result = listener.run(str(profile), "--dry-run", "--", "true", env=env)
    assert "runwrap.dry_run" in _imports(result.stderr)
    result = listener.run(str(profile), "--dry-run", "--", "true", env=env)
    imported = _runwrap_modules(_imports(result.stderr))
    assert "runwrap.dry_run" not in imported
    # what a dry run imports of the bundle's late part (it never reaches the listener), and nothing else
    assert imported - BOOT <= {"runwrap.supervise.signals"}
