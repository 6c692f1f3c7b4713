"""The public API type-checks under `mypy --strict`, as users who run mypy on their own code will see it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A user's program, checked against the installed package the way their mypy would see it.
USER_CODE = """\
from runwrap import Client, Credential, NotFound, Secret

def token(client: Client) -> str:
    try:
        with client.credential(domain="github.com", fields=["password"]) as cred:
            secret: Secret = cred.password
            return secret.reveal()
    except NotFound as exc:
        status: int = exc.connect_status
        return str(status)

def env(client: Client) -> dict[str, str]:
    return {k: v.reveal() if isinstance(v, Secret) else v for k, v in client.env("deploy").items()}

def typed(cred: Credential) -> list[str]:
    return sorted(cred)
"""


def mypy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_public_api_and_a_users_code_pass_mypy_strict(tmp_path):
    """`mypy --strict` on the whole package, plus a user's program using the public API.

    A deliberately wrong user program proves the check is live: it must fail, and only it.
    """
    (tmp_path / "user_code.py").write_text(USER_CODE)
    bad = tmp_path / "bad_code.py"
    bad.write_text("from runwrap import Client\n\ndef f(c: Client) -> str:\n    return c.credential(domain='x')\n")
    result = mypy("runwrap", str(tmp_path / "user_code.py"), str(bad))
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1, result.stdout + result.stderr
    assert errors[0].startswith(f"{bad}:4: error: Incompatible return value type (got \"Credential\"")
