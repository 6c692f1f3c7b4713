"""The README's first two commands on a fresh copy of the checkout (issue 13, section 6): `scripts/quickstart`
sets up .venv and runs the main job on the example provider, and the README's way of getting
`runwrap` on PATH afterwards works. (`scripts/test` is what runs this suite, so it is only checked
to be there and runnable.)"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def first_block() -> list[str]:
    body = re.search(r"^```\n(.*?)^```", README, re.S | re.M)
    assert body, "the README opens with a code block"
    commands = [line.split("#")[0].strip() for line in body.group(1).splitlines()]
    return [command for command in commands if command]


def test_the_first_two_commands_are_the_quickstart_and_the_tests():
    assert first_block() == ["scripts/quickstart", "scripts/test"]
    for script in first_block():
        assert os.access(ROOT / script, os.X_OK), f"{script} is not executable"


def fresh_copy(target: Path) -> Path:
    """The tracked files of the checkout as they are now, as a fresh clone would have them."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in listed.decode().split("\0"):
        if name and (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    return target


def test_quickstart_on_a_fresh_copy_then_runwrap_on_path_as_the_readme_says(tmp_path):
    copy = fresh_copy(tmp_path / "runwrap")
    # A new user's shell: no venv active, no runwrap on PATH, nothing of this test's environment.
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if ".venv" not in p)
    env = {"PATH": path, "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    assert shutil.which("runwrap", path=path) is None
    result = subprocess.run([first_block()[0]], cwd=copy, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "quickstart: OK" in result.stdout
    # What the README says to do next, in the Install section, and what quickstart's last line says.
    activate = ". .venv/bin/activate"
    assert f"`{activate}` puts it there" in README
    assert activate in result.stdout.splitlines()[-1]
    shell = subprocess.run(["bash", "-c", f"{activate} && command -v runwrap && runwrap --version"], cwd=copy,
                           env=env, capture_output=True, text=True, timeout=60)
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout.splitlines() == [str(copy / ".venv" / "bin" / "runwrap"), f"runwrap {version('runwrap')}"]
