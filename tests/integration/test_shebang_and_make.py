"""runwrap in shebang lines and Makefile recipes, as agents and CI use it (issue 4, item 8)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runwrap.testing.listener import RunningListener
from tests.polling import wait_for

PROFILE = "credentials:\n  - domain: github.com\n    env:\n      GH_TOKEN: password\n"


@pytest.fixture
def project(listener: RunningListener, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A folder with profiles/ci.yaml, and an environment where `runwrap` is on PATH."""
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "ci.yaml").write_text(PROFILE)
    env = dict(listener.env)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    return tmp_path, env


def script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path




def test_shebang_runs_script_with_its_arguments(project):
    folder, env = project
    deploy = script(folder / "deploy", "#!/usr/bin/env -S runwrap ci -- bash\n"
                    'echo "args: $# [$1] [$2]"\necho "token: $GH_TOKEN"\nexit 7\n')
    result = subprocess.run([str(deploy), "one", "two words"], cwd=folder, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 7, result.stderr
    assert result.stdout == "args: 2 [one] [two words]\ntoken: ***\n"


def test_shebang_that_would_loop_is_refused(project):
    folder, env = project
    loop = script(folder / "loop", "#!/usr/bin/env -S runwrap ci --\necho never\n")
    started = time.monotonic()
    result = subprocess.run([str(loop)], cwd=folder, env=env, capture_output=True, text=True, timeout=60)
    assert time.monotonic() - started < 20
    assert result.returncode == 126
    assert "shebang" in result.stderr and "never" not in result.stdout
    assert len(result.stderr.strip().splitlines()) == 1


MAKEFILE = """\
.PHONY: all a b c d fail
all: a b c d
a b c d:
\t@runwrap ci -- sh -c 'echo "$@ $$GH_TOKEN"'
fail:
\t@runwrap ci -- sh -c 'exit 3'
\t@echo "not reached"
"""


def test_make_parallel_recipes_and_failing_recipe(project):
    assert shutil.which("make"), "GNU make is missing; scripts/test installs it"
    folder, env = project
    (folder / "Makefile").write_text(MAKEFILE)
    result = subprocess.run(["make", "-j4", "all"], cwd=folder, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.split("\n")[:-1]) == ["a ***", "b ***", "c ***", "d ***"]
    failed = subprocess.run(["make", "fail"], cwd=folder, env=env, capture_output=True, text=True, timeout=60)
    assert failed.returncode == 2
    assert "Error 3" in failed.stderr and "not reached" not in failed.stdout


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", "-L", "runwrap-tests", *args], capture_output=True, text=True, check=True,
                          timeout=30).stdout


def test_ctrl_c_on_make_stops_everything_once(project):
    assert shutil.which("tmux") and shutil.which("make"), "tmux or make is missing; scripts/test installs them"
    folder, env = project
    log = folder / "signals.log"
    (folder / "Makefile").write_text(
        ".PHONY: long\nlong:\n"
        f"\t@runwrap ci -- sh -c 'trap \"echo INT >> {log}; exit 130\" INT; echo started > {folder}/started; "
        "while :; do sleep 0.1; done'\n"
        f"\t@echo after >> {log}\n")
    env_args = [f"{k}={v}" for k, v in env.items() if k in ("PATH", "RUNWRAP_HOME", "HOME", "LANG")]
    session = f"make{os.getpid()}"
    _tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "30", "-c", str(folder),
          "env", "-i", *env_args, "bash", "--norc", "--noprofile")
    try:
        # An interactive shell drops the rest of a command list when its job dies of SIGINT, so the
        # `echo` below must never print: that is the calling shell seeing SIGINT, as Cracauer asks.
        _tmux("send-keys", "-t", session, f"make long; echo survived > {folder}/survived", "Enter")
        wait_for(lambda: (folder / "started").exists(), 20, "the recipe's child to start")
        _tmux("send-keys", "-t", session, "C-c")
        wait_for(lambda: "Error 130" in _tmux("capture-pane", "-p", "-t", session), 20, "make to stop")
        wait_for(lambda: subprocess.run(["pgrep", "-f", "make long"], capture_output=True).returncode == 1,
                 10, "make to exit")
        assert not (folder / "survived").exists()
        assert log.read_text().splitlines() == ["INT"]  # delivered once; the recipe after it never ran
        leftovers = subprocess.run(["pgrep", "-f", f"{folder}/started"], capture_output=True, text=True)
        assert leftovers.stdout == ""
    finally:
        subprocess.run(["tmux", "-L", "runwrap-tests", "kill-session", "-t", session], capture_output=True)
