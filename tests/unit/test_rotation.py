"""on_change without processes: the profile key and --on-change, the backoff and limit with a given
clock, what the rotation state does with each change, and a masker that learns new values."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from runwrap.errors import ProfileError, UsageError
from runwrap.profile import cache as profile_cache
from runwrap.profile.lookup import find, load
from runwrap.profile.model import parse_on_change
from runwrap.run_flags import parse_file_flags, parse_on_change_flag
from runwrap.secret import Secret
from runwrap.supervise.launch import OnChange, Update
from runwrap.supervise.mask import Masker
from runwrap.supervise.rotation import Backoff, Rotation

WITH_FILE = """\
credentials:
  - domain: a.com
    env: {USER_NAME: username}
    files:
      CONF: {field: password}
on_change: {}
"""


def profile(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# --- the profile key and the flag ----------------------------------------------------------------

@pytest.mark.parametrize(("written", "read"), [
    ("restart", "restart"), ("exit", "exit"), ("none", "none"), ("signal:HUP", "signal:HUP"),
    ("signal:hup", "signal:HUP"), ("signal:SIGUSR1", "signal:USR1"), ('"signal: usr2"', "signal:USR2"),
])
def test_on_change_is_read(tmp_path, written, read):
    assert load(profile(tmp_path, WITH_FILE.replace("{}", written))).on_change == read


def test_on_change_defaults_to_none(tmp_path):
    assert load(profile(tmp_path, "credentials:\n  - domain: a.com\n    env: {A: password}\n")).on_change == "none"
    assert load(profile(tmp_path, WITH_FILE.replace("{}", ""))).on_change == "none"


@pytest.mark.parametrize(("written", "what"), [
    ("reload", "on_change: reload is not an on_change mode — use one of: none, restart, exit, signal:NAME"),
    ("signal:KILL", "on_change: KILL is not a signal on_change can send — name one such as HUP, USR1 or USR2"),
    ("signal:NOPE", "on_change: NOPE is not a signal on_change can send"),
    ('"signal:"', "on_change: nothing is not a signal on_change can send"),
    ("[restart]", "on_change is a list — write on_change: restart, signal:HUP, exit or none"),
])
def test_a_bad_on_change_is_refused_with_its_line(tmp_path, written, what):
    with pytest.raises(ProfileError) as info:
        load(profile(tmp_path, WITH_FILE.replace("{}", written)))
    assert str(info.value).startswith(f"{tmp_path / 'p.yaml'}:6: {what}")


def test_signal_needs_files(tmp_path):
    with pytest.raises(ProfileError) as info:
        load(profile(tmp_path, "credentials:\n  - domain: a.com\n    env: {A: password}\non_change: signal:HUP\n"))
    assert str(info.value) == (f"{tmp_path / 'p.yaml'}:4: on_change: signal:HUP needs files: — a running process's"
                               " environment cannot be changed, so only a file can show it a new value — put the"
                               " values it re-reads in files:, or use on_change: restart")


def test_on_change_survives_the_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(profile_cache, "_SETTLE_NS", 0)
    (tmp_path / "profiles").mkdir()
    profile(tmp_path / "profiles", WITH_FILE.replace("{}", "signal:USR1"))
    environ = {"RUNWRAP_HOME": str(tmp_path / "home")}
    assert find("p", environ=environ, cwd=tmp_path).on_change == "signal:USR1"
    assert list((tmp_path / "home" / "cache" / "profiles").glob("*.json"))  # the second read is the cache's
    assert find("p", environ=environ, cwd=tmp_path).on_change == "signal:USR1"


def test_the_run_flag():
    assert parse_on_change_flag("restart", {}) == "restart"
    assert parse_on_change_flag("signal:hup", parse_file_flags(["KEY=notes"], {})) == "signal:HUP"
    with pytest.raises(UsageError, match="--on-change signal:HUP needs --file"):
        parse_on_change_flag("signal:HUP", {})
    with pytest.raises(UsageError, match=r"^--on-change: later is not an on_change mode"):
        parse_on_change_flag("later", {})
    with pytest.raises(ValueError):
        parse_on_change("signal:STOP")


# --- backoff and limit ---------------------------------------------------------------------------

def test_the_default_backoff_doubles_and_the_sixth_restart_in_a_minute_is_refused():
    backoff = Backoff(OnChange("restart"))
    now, starts = 100.0, []
    for _ in range(5):
        assert not backoff.exceeded(now)
        now = backoff.due(now)
        starts.append(now)
        backoff.started(now)
    assert [t - 100.0 for t in starts] == [0.0, 1.0, 3.0, 7.0, 15.0]
    assert backoff.exceeded(now)
    assert backoff.exceeded(100.0 + 59.9)
    assert not backoff.exceeded(100.0 + 60.0)  # the first restart left the window


def test_the_backoff_is_capped_and_resets_after_a_quiet_window():
    backoff = Backoff(OnChange("restart", limit=100, first=1.0, cap=15.0))
    for t in range(10):
        backoff.started(float(t))
    assert backoff.due(10.0) == 9.0 + 15.0
    assert backoff.due(9.0 + 60.0) == 9.0 + 60.0  # every restart is a window old: at once again


# --- what a change does --------------------------------------------------------------------------

def update(seq: int, value: bytes) -> Update:
    secret = Secret(value)
    return Update(seq, {"TOKEN": secret}, (secret,), {"CONF": Secret(value)})


def test_none_wipes_the_change():
    rotation = Rotation(OnChange("none"))
    change = update(1, b"new-value")
    assert rotation.arrived(change, 0.0) == "ignore"
    assert change.secrets[0].buffer == bytearray() and change.files["CONF"].buffer == bytearray()


def test_exit_and_an_unusable_change_end_the_run():
    rotation = Rotation(OnChange("exit"))
    assert rotation.arrived(update(1, b"new-value"), 0.0) == "stop"
    with pytest.raises(Exception, match="on_change is exit"):
        rotation.finish()
    rotation = Rotation(OnChange("restart"))
    assert rotation.arrived(Update(1, error="the item has no password value"), 0.0) == "stop"
    with pytest.raises(Exception, match="cannot be used: the item has no password value"):
        rotation.finish()


def test_restart_changes_coalesce_and_the_replaced_values_are_wiped():
    rotation = Rotation(OnChange("restart"))
    first, second = update(1, b"first-value"), update(2, b"second-value")
    assert rotation.arrived(first, 10.0) == "wait"
    assert rotation.due(10.0) and rotation.stopping
    assert rotation.arrived(second, 10.5) == "wait"
    assert rotation.pending is second and rotation.coalesced == [1]
    assert first.secrets[0].buffer == bytearray()
    assert second.secrets[0].buffer == bytearray(b"second-value")
    assert not rotation.due(11.0)  # a restart is under way: they never overlap
    rotation.cancel()
    assert rotation.pending is None and second.secrets[0].buffer == bytearray()


def test_the_limit_stops_the_run():
    rotation = Rotation(OnChange("restart", limit=1))
    rotation.backoff.started(0.0)
    assert rotation.arrived(update(1, b"new-value"), 1.0) == "stop"
    with pytest.raises(Exception, match="after 1 restarts within 1m, the limit of on_change: restart"):
        rotation.finish()


# --- the masker learns the new values ------------------------------------------------------------

def test_a_masker_given_new_values_masks_old_and_new_and_keeps_its_held_tail():
    masker = Masker([b"old-secret-value"])
    out = masker.feed(b"a old-secret-value b new-sec")  # "new-sec" is nothing yet: it goes out
    assert out == b"a *** b new-sec"
    out += masker.feed(b"x old-sec")  # held: it may be the old value
    masker.add([Secret(b"new-secret-value")])
    out += masker.feed(b"ret-value and new-secret-value")
    out += masker.flush()
    assert out == b"a *** b new-secx *** and ***"
    masker.wipe()
