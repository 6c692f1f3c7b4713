"""No file runwrap makes ever reaches a disk: while the child runs, no regular file under /tmp,
/var/tmp, the homes or the working directory holds a secret; afterwards no file anywhere we can
look does, memory file systems included, even though the child was killed with SIGKILL.

The search is bounded: `find` lists only the regular files changed since the test began (a file
holding the secret must have been written then), smaller than 16 MiB, and each is read whole.
The listener's vault gets the values through its environment, so the test itself writes none.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

import pytest

from runwrap.testing.listener import runwrap_executable
from tests.integration.files_support import profile, vault_listener

PASSWORD = "pw-" + secrets.token_hex(16)
NOTE_LINE = secrets.token_hex(24)
ITEMS = [{"credential_id": "db-1", "domain": "db.internal", "username": "dbuser", "password": PASSWORD,
          "notes": f"-----BEGIN KEY-----\n{NOTE_LINE}\n-----END KEY-----\n"}]
DISKS = ["/tmp", "/var/tmp", "/root", "/home"]
MEMORY = ["/dev/shm", "/run"]

PROFILE = """\
credentials:
  - domain: db.internal
    files:
      PGPASSFILE: {template: "*:*:*:{{username}}:{{password}}\\n", mode: "0600"}
      KEY: {field: notes}
      SHARED: {field: password, path: true}
"""

CHILD = ('cat "$PGPASSFILE" "$KEY" "$SHARED" > /dev/null && echo "$$ $SHARED" && read line')


def holding(needles: list[bytes], roots: list[str], since: float) -> list[str]:
    """The regular files under `roots` changed since `since` that contain one of `needles`."""
    existing = [root for root in dict.fromkeys(roots) if os.path.isdir(root)]
    listed = subprocess.run(["find", *existing, "-xdev", "-type", "f", "-newerct", f"@{int(since) - 1}",
                             "-size", "-16M", "-print0"], capture_output=True, timeout=300, check=False).stdout
    found = []
    for name in listed.split(b"\0"):
        try:
            with open(name, "rb") as file:
                data = file.read()
        except OSError:
            continue  # gone meanwhile, or a socket's path
        if any(needle in data for needle in needles):
            found.append(os.fsdecode(name))
    return found


@pytest.fixture(scope="module")
def vault(tmp_path_factory):
    listener = vault_listener(tmp_path_factory.mktemp("vault"), ITEMS)
    yield listener
    listener.cleanup()


def test_no_secret_file_on_a_disk_while_the_child_runs_and_none_anywhere_after(vault, tmp_path):
    since = time.time()
    needles = [PASSWORD.encode(), NOTE_LINE.encode()]
    disks = [*DISKS, os.getcwd()]

    # The search can see: a canary written now under /tmp is found.
    canary = secrets.token_hex(16)
    (tmp_path / "canary").write_text(canary)
    assert holding([canary.encode()], disks, since) == [str(tmp_path / "canary")]

    proc = subprocess.Popen([runwrap_executable(), profile(tmp_path, PROFILE), "--", "sh", "-c", CHILD],
                            env=vault.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        pid, shared = proc.stdout.readline().split()
        assert holding(needles, disks, since) == []
        # ... while the path: true file, on tmpfs, does hold it (so the search after is no formality).
        assert holding(needles, [os.path.dirname(shared)], since) == [shared]
        os.kill(int(pid), signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL, proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
    assert not os.path.exists(os.path.dirname(shared))
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    assert holding(needles, [*disks, *MEMORY, *([xdg] if xdg else [])], since) == []
    assert PASSWORD not in Path(vault.audit_log).read_text() and PASSWORD not in vault.output()
