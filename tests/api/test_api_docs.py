"""docs/api.md's examples run, as written, against a real listener.

Fenced blocks are taken from the page in order:
- a ```yaml block whose first line is `# profiles/NAME.yaml` is written to that path;
- a ```python block whose first line is `# NAME.py` is a file of a user's project, whose tests are
  then run by pytest (the plugin comes in through its entry point, as for a user);
- every other ```python block is a program, run in its own interpreter as the paired consumer.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.S | re.M)
FILE_NAME = re.compile(r"^# ((?:profiles/)?[\w-]+\.(?:py|yaml))\b")
SECRETS = ("alligator5", "correct-horse-battery-staple", "hunter2-but-longer")


def blocks() -> list[tuple[str, str | None, str]]:
    """(language, file name or None, code) for each fenced block of the page."""
    found = []
    for lang, code in FENCE.findall(DOC.read_text()):
        named = FILE_NAME.match(code)
        found.append((lang, named.group(1) if named else None, code))
    return found


PROGRAMS = [code for lang, name, code in blocks() if lang == "python" and name is None]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder programs run in, holding the page's profiles and project files."""
    root = tmp_path_factory.mktemp("docs")
    for _lang, name, code in blocks():
        if name:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(code)
    return root


def test_the_page_has_the_examples_the_tests_expect():
    names = [name for _, name, _ in blocks() if name]
    assert names == ["profiles/deploy.yaml", "test_wrapper.py", "fake_vault.py"]
    assert len(PROGRAMS) == 5
    assert any("def main()" in code and "client.credential(" in code for code in PROGRAMS)  # the agent


@pytest.mark.parametrize("index", range(len(PROGRAMS)))
def test_program_runs(index, listener, workdir):
    result = subprocess.run([sys.executable, "-c", PROGRAMS[index]], cwd=workdir, env=listener.env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [s for s in SECRETS if s in result.stdout + result.stderr] == []
    expected = {
        0: ["signed in as example", "Credential(username=***, password=***, uri=***, domain=***, credential_id=***)",
            "Secret(***)"],
        1: ["['totp', 'username']"],
        2: ["runwrap: the vault has no item for domain no-such-host.example.org"],
        3: ["production example 10"],
        4: ["agent: sync repos: using Credential(username=***, password=***) for github.com",
            "agent: sync repos: exit 0", "agent: nightly report: exit 0",
            "agent: legacy job: skipped: the vault has no item for domain retired.example.net"],
    }[index]
    assert all(line in result.stdout for line in expected), result.stdout


def test_the_agent_asked_once_per_task_on_one_session(listener, workdir):
    """The agent example's audit trail: one request per task, all from one process."""
    before = len(listener.audit_events())
    subprocess.run([sys.executable, "-c", PROGRAMS[4]], cwd=workdir, env=listener.env, check=True,
                   capture_output=True, timeout=60)
    requests = [e for e in listener.audit_events()[before:] if e.get("event") == "request"]
    assert [e["query"]["domain"] for e in requests] == ["github.com", "example.com", "retired.example.net"]
    assert [e["decision"] for e in requests] == ["allowed", "allowed", "not_found"]
    assert len({e["provenance"]["pid"] for e in requests}) == 1
    assert len({e["lease"] for e in requests}) == 1  # one session: the lease id is the session's


def test_the_pytest_example_passes_as_a_users_project(workdir):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RUNWRAP_", "PYTEST_"))}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_wrapper.py"],
                            cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 passed" in result.stdout, result.stdout
