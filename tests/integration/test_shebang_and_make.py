"""runwrap in shebang lines and Makefile recipes, as agents and CI use it (issue 4, item 8)."""

from __future__ import annotations

import os
import re
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


def readme_shebang_scripts() -> list[str]:
    """The README's shebang scripts (its "Shebang lines and Makefiles" part), in order."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    part = readme[readme.index("Shebang lines and Makefiles:"):readme.index("From Python:")]
    return re.findall(r"^```sh\n(.*?)^```", part, re.S | re.M)


def from_readme(folder: Path, script_text: str) -> Path:
    """A README script in `folder`, its body (`./migrate && ...`) replaced by a line that shows what it got,
    its profile folder (/srv/app/profiles) being `folder`/profiles."""
    lines = [line.replace("/srv/app/profiles", str(folder / "profiles")) for line in script_text.splitlines()]
    body = [line for line in lines if line.startswith("./")]
    assert body, script_text
    shown = 'echo "token: $DEPLOY_TOKEN args: $# [$1] cwd: $PWD"'
    return script(folder / "deploy", "\n".join(shown if line in body else line for line in lines) + "\n")


@pytest.fixture
def deploy_project(project) -> tuple[Path, Path, dict[str, str]]:
    """`project` with profiles/deploy.yaml setting DEPLOY_TOKEN, and another folder to run from."""
    folder, env = project
    (folder / "profiles" / "deploy.yaml").write_text(
        "credentials:\n  - domain: github.com\n    env:\n      DEPLOY_TOKEN: password\n")
    elsewhere = folder / "elsewhere"
    elsewhere.mkdir()
    return folder, elsewhere, env


def test_readme_shebang_finds_profiles_only_from_its_own_folder(deploy_project):
    folder, elsewhere, env = deploy_project
    deploy = from_readme(folder, readme_shebang_scripts()[0])
    here = subprocess.run([str(deploy), "x"], cwd=folder, env=env, capture_output=True, text=True, timeout=60)
    assert (here.returncode, here.stdout) == (0, f"token: *** args: 1 [x] cwd: {folder}\n"), here.stderr
    away = subprocess.run([str(deploy), "x"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60)
    assert away.returncode == 125 and 'no profile named "deploy"' in away.stderr  # what the README warns of


@pytest.mark.parametrize("which", [1, 2], ids=["RUNWRAP_PROFILES in the shebang", "profile beside the script"])
def test_readme_shebang_from_any_folder(deploy_project, which):
    folder, elsewhere, env = deploy_project
    scripts = readme_shebang_scripts()
    assert len(scripts) == 3, "the README shows the shebang script and its two ways to run from anywhere"
    deploy = from_readme(folder, scripts[which])
    for invoked in (str(deploy), "../deploy"):  # by its full path, and by a path relative to elsewhere
        result = subprocess.run([invoked, "one arg"], cwd=elsewhere, env=env, capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"token: *** args: 1 [one arg] cwd: {elsewhere}\n"


def test_runwrap_profiles_exported_works_from_any_folder(deploy_project):
    folder, elsewhere, env = deploy_project
    deploy = from_readme(folder, readme_shebang_scripts()[0])
    result = subprocess.run([str(deploy)], cwd=elsewhere, env={**env, "RUNWRAP_PROFILES": str(folder / "profiles")},
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (0, f"token: *** args: 0 [] cwd: {elsewhere}\n"), result.stderr


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
