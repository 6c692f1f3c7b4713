"""runwrap installed the way a user installs it: the built wheel in a fresh venv, nothing of the checkout.

The wheel is built once per session from a copy of the sources (so the checkout gets no build/ or
egg-info), with the hash-pinned setuptools of the dev lock (--no-isolation: no unpinned download).
The copy's version gets a local label, so `runwrap --version` can only print it by reading the
installed package's metadata. The venv gets the runtime lock with --require-hashes, then the wheel
with --no-deps, and everything runs from a folder outside the checkout with an environment built
from nothing: no PYTHONPATH, the venv's bin first on PATH, a private RUNWRAP_HOME.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.polling import wait_for

ROOT = Path(__file__).resolve().parents[2]
# The first test also builds and installs (pip fetches every file of the lock: nothing is cached
# here): ~40 s on an idle machine, minutes on a loaded one. Each step has its own timeout below.
pytestmark = pytest.mark.timeout(900)
LABEL = "+wheeltest"


def run(*args: str | Path, timeout: float) -> None:
    """Run a setup step; on failure, say what it printed."""
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, args))} exited {result.returncode}:\n{result.stderr}"


def pyproject_version() -> str:
    found = re.search(r'^version = "([^"]+)"$', (ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    assert found, "pyproject.toml has no version line"
    return found.group(1)


@pytest.fixture(scope="session")
def dist() -> Iterator[Path]:
    """`python -m build` (sdist, then the wheel from that sdist) of a copy of the sources, with LABEL."""
    with tempfile.TemporaryDirectory(prefix="rw-build-") as folder:
        source = Path(folder) / "source"
        source.mkdir()
        for name in ("pyproject.toml", "README.md", "bin/runwrap"):
            (source / name).parent.mkdir(exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
        shutil.copytree(ROOT / "runwrap", source / "runwrap", ignore=shutil.ignore_patterns("__pycache__"))
        pyproject = source / "pyproject.toml"
        version = pyproject_version()
        text = pyproject.read_text().replace(f'version = "{version}"', f'version = "{version}{LABEL}"', 1)
        pyproject.write_text(text)
        out = Path(folder) / "dist"
        run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, source, timeout=300)
        yield out


@pytest.fixture(scope="session")
def venv(dist: Path) -> Iterator[Path]:
    """A fresh venv with the hash-pinned runtime lock and the wheel, outside the checkout."""
    with tempfile.TemporaryDirectory(prefix="rw-venv-") as folder:
        path = Path(folder) / "venv"
        # No pip inside (ensurepip is most of a venv's creation time): this pip installs into it.
        run(sys.executable, "-m", "venv", "--without-pip", path, timeout=120)
        pip = (sys.executable, "-m", "pip", "--python", path / "bin" / "python", "install", "--quiet",
               "--disable-pip-version-check")
        run(*pip, "--require-hashes", "-r", ROOT / "requirements" / "runtime.lock", timeout=600)
        (wheel,) = dist.glob("*.whl")
        run(*pip, "--no-deps", wheel, timeout=120)
        yield path


@pytest.fixture
def user(venv: Path, tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    """A clean environment and a working folder outside the checkout, as a new user has them."""
    home = Path(tempfile.mkdtemp(prefix="rw-", dir="/tmp"))  # short: the socket path must fit 108 bytes
    work = tmp_path / "work"
    work.mkdir()
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8",
           "RUNWRAP_HOME": str(home)}
    yield env, work
    shutil.rmtree(home, ignore_errors=True)


def runwrap(user: tuple[dict[str, str], Path], *args: str) -> subprocess.CompletedProcess[str]:
    env, work = user
    return subprocess.run(["runwrap", *args], env=env, cwd=work, capture_output=True, text=True, timeout=60)


def test_wheel_has_py_typed_and_no_tests(dist):
    (wheel,) = dist.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "runwrap/py.typed" in names
    assert "runwrap/__main__.py" in names and "runwrap/providers/example.py" in names
    assert not [n for n in names if n.startswith("tests/") or "/tests/" in n or "__pycache__" in n]
    # The command is bin/runwrap, for the installer to point at its python; no console_scripts wrapper.
    (script,) = [n for n in names if n.endswith(".data/scripts/runwrap")]
    assert zipfile.ZipFile(wheel).read(script).startswith(b"#!python\n")
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "console_scripts" not in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_sdist_has_what_a_build_needs(dist):
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    needed = {"pyproject.toml", "README.md", "PKG-INFO", "bin/runwrap", "runwrap/py.typed", "runwrap/__init__.py"}
    assert needed <= names
    sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "runwrap").rglob("*.py")}
    assert sources <= names, f"missing from the sdist: {sorted(sources - names)}"


def imported_before_runwrap(stderr: str) -> list[str]:
    """The modules that `-X importtime` shows imported at the top level after site and before runwrap."""
    rows = [line.split("|")[-1] for line in stderr.splitlines() if line.startswith("import time:")]
    top = [row.strip() for row in rows if not row.startswith("  ")]  # one blank before a top-level name
    first = next(i for i, name in enumerate(top) if name.split(".")[0] == "runwrap")
    return top[top.index("site") + 1:first]


def test_the_command_starts_runwrap_before_anything_else(venv, user):
    env, work = user
    script = venv / "bin" / "runwrap"
    assert script.read_text().startswith(f"#!{venv / 'bin' / 'python'}")
    # The command as a shell runs it: its first line is the interpreter, PYTHONPROFILEIMPORTTIME its -X importtime.
    result = subprocess.run(["runwrap", "--version"], env={**env, "PYTHONPROFILEIMPORTTIME": "1"}, cwd=work,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert imported_before_runwrap(result.stderr) == []  # a console_scripts wrapper has `re` here


def test_installed_package_is_the_venvs_not_the_checkouts(venv, user):
    env, work = user
    result = subprocess.run([str(venv / "bin" / "python"), "-c",
                             "import json, sys, runwrap; print(json.dumps([runwrap.__file__, sys.path]))"],
                            env=env, cwd=work, capture_output=True, text=True, check=True, timeout=60)
    location, path = json.loads(result.stdout)
    assert Path(location).is_relative_to(venv), location
    assert not [entry for entry in path if entry and Path(entry).resolve().is_relative_to(ROOT)], path


def test_version_comes_from_the_installed_metadata(user):
    result = runwrap(user, "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"runwrap {pyproject_version()}{LABEL}\n"


def test_version_of_the_checkout_install_is_pyprojects():
    from importlib.metadata import version

    import runwrap

    assert version("runwrap") == pyproject_version() == runwrap.__version__


def test_listen_invite_pair_and_a_masked_profile_run(user):
    env, work = user
    home = Path(env["RUNWRAP_HOME"])
    log = open(os.open(home / "listener.out", os.O_WRONLY | os.O_CREAT, 0o600), "wb")
    listener = subprocess.Popen(["runwrap", "listen", "--provider", "example"], env=env, cwd=work,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        output = home / "listener.out"
        wait_for(lambda: "listening on" in output.read_text() or listener.poll() is not None, timeout=30,
                 what="the listener to listen")
        assert listener.poll() is None, output.read_text()

        invite = runwrap(user, "invite", "--name", "wheel", "--scope", "github.com", "--output", "json")
        assert invite.returncode == 0, invite.stderr
        paired = runwrap(user, "pair", json.loads(invite.stdout)["code"], "--name", "local")
        assert paired.returncode == 0, paired.stderr

        (work / "profiles").mkdir()
        (work / "profiles" / "wheel.yaml").write_text(
            "credentials:\n  - domain: github.com\n    env:\n      X: password\n")
        result = runwrap(user, "wheel", "--", "sh", "-c", "echo $X")
        assert result.returncode == 0, result.stderr
        assert result.stdout == "***\n"
        assert "alligator5" not in result.stdout + result.stderr
    finally:
        listener.terminate()
        listener.wait(timeout=30)
        log.close()
