"""`runwrap doctor` is honest (issue 13, section 6): a provider that needs options says which, the
connections it promises are listed and reached, and a listener that does not answer is a failure."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from runwrap.errors import DOCTOR_NO_LISTENER
from runwrap.testing.listener import RunningListener


def _providers(stdout: str) -> dict[str, str]:
    lines = stdout.split("files:")[0].splitlines()[1:]
    return {line.split()[0]: line.split(None, 1)[1] for line in lines}


def test_a_provider_that_needs_options_says_which(tmp_path: Path) -> None:
    with RunningListener(extra_env={"HOME": str(tmp_path), "PASSWORD_STORE_DIR": ""}) as listener:
        shown = _providers(listener.run("doctor", check=False).stdout)
    assert shown["example"] == "usable"
    assert shown["pass"].startswith("listen --provider pass needs --provider-option store=PATH")
    assert f"no password store at {tmp_path}/.password-store" in shown["pass"]
    if importlib.util.find_spec("pykeepass") is not None:  # the dev lock has runwrap[keepass]
        assert "--provider-option database=PATH.kdbx" in shown["keepass"]
    else:  # test.lock (scripts/test-pythons) has not: the missing package is what keeps it from use
        assert shown["keepass"] == "not usable: pykeepass is not installed: pip install 'runwrap[keepass]'"
    assert "--provider-option command=" in shown["command"]
    assert "--provider-option address=URL" in shown["openbao"] and "usable" not in shown["openbao"]


def test_pass_with_a_store_is_usable(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    with RunningListener(extra_env={"PASSWORD_STORE_DIR": str(store)}) as listener:
        assert _providers(listener.run("doctor", check=False).stdout)["pass"] == "usable"


def test_the_connections_are_listed_and_a_listener_down_is_a_failure() -> None:
    with RunningListener() as listener:
        listener.pair()
        up = listener.run("doctor", check=False)
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"listener: running on unix:{listener.socket}" in up.stdout
        assert f"  listener   unix:{listener.socket}: answers, key as pinned" in up.stdout.splitlines()
        listener.stop()
        down = listener.run("doctor", check=False)
    assert down.returncode == DOCTOR_NO_LISTENER == 3, down.stdout
    assert "listener: not running here" in down.stdout
    assert f"  listener   unix:{listener.socket}: not answering: cannot reach" in down.stdout


def test_no_connection_and_no_listener_is_a_failure(tmp_path: Path) -> None:
    listener = RunningListener()  # never started: its home has nothing in it
    try:
        result = listener.run("doctor", check=False)
    finally:
        listener.cleanup()
    assert result.returncode == DOCTOR_NO_LISTENER, result.stdout
    assert "connections: none; pair with `runwrap pair CODE" in result.stdout
