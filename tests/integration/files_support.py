"""A real listener whose vault holds items the test chooses, for the `files:` tests.

The `command` provider runs a small script per lookup; the items reach it through the listener's
environment (never a file), so a test can look for their values on the disks afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from runwrap.testing.listener import RunningListener, runwrap_executable

VAULT = """\
import json, os, sys
query = json.load(sys.stdin)
for item in json.loads(os.environ["RW_TEST_ITEMS"]):
    domain = query.get("domain")
    if item["credential_id"] == query.get("id") or (
        domain and (domain == item["domain"] or domain.endswith("." + item["domain"]))
    ):
        print(json.dumps(item))
        sys.exit(0)
print(json.dumps({"error": "not_found"}))
sys.exit(1)
"""


def vault_listener(folder: Path, items: Sequence[Mapping[str, str]]) -> RunningListener:
    """A started, paired listener on the command provider serving `items`; clean it up when done."""
    script = folder / "vault"
    script.write_text(f"#!{sys.executable}\n{VAULT}")
    script.chmod(0o700)
    listener = RunningListener("command", provider_options={"command": str(script)},
                               extra_env={"RW_TEST_ITEMS": json.dumps(list(items))})
    listener.start()
    listener.pair()
    return listener


def requests(listener: RunningListener) -> list[dict[str, Any]]:
    return [event for event in listener.audit_events() if event.get("event") == "request"]


def runwrap(listener: RunningListener, *args: str, env: Mapping[str, str] | None = None,
            input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`runwrap ARGS` as the listener's paired consumer, from the current folder."""
    return subprocess.run([runwrap_executable(), *args], env={**listener.env, **(env or {})}, text=True,
                          capture_output=True, input=input, timeout=timeout, check=False)


def profile(folder: Path, text: str, name: str = "files.yaml") -> str:
    path = folder / name
    path.write_text(text)
    return str(path)


def memory_folders() -> set[str]:
    """runwrap's path: true folders that exist now (in /dev/shm and $XDG_RUNTIME_DIR)."""
    found = set()
    for base in {"/dev/shm", os.environ.get("XDG_RUNTIME_DIR") or "/dev/shm"}:
        try:
            found |= {os.path.join(base, n) for n in os.listdir(base) if n.startswith("runwrap-files-")}
        except OSError:
            pass
    return found
