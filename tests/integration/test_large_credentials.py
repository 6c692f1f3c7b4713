"""A credential over one Noise message (~64 KB: a kubeconfig with its certificates, a CA bundle) is
carried in parts up to 512 KiB and reaches `files:` whole; over that it is refused with a clear error
to the consumer and an audit event that says so — never audited `allowed` and then dropped."""

from __future__ import annotations

import hashlib
import json
import shlex
import sys
from pathlib import Path

from runwrap.testing.listener import RunningListener

# Answers every query with a `notes` of SIZE bytes (PEM-like lines, derived from a seed so nothing
# secret is on a command line) and a short password.
VAULT = """\
import base64, hashlib, json, sys
size = int(sys.argv[1])
lines, n = [], 0
while sum(map(len, lines)) < size:
    lines.append(base64.b64encode(hashlib.sha512(b"%d" % n).digest())[:63].decode() + "\\n")
    n += 1
notes = "".join(lines)[:size]
json.load(sys.stdin)
print(json.dumps({"username": "kube", "password": "large-item-password", "notes": notes,
                  "credential_id": "kube-1", "domain": "kube.example.com"}))
"""


def _listener(tmp: Path, size: int) -> RunningListener:
    script = tmp / "vault.py"
    script.write_text(VAULT)
    command = " ".join(shlex.quote(part) for part in (sys.executable, str(script), str(size)))
    return RunningListener("command", provider_options={"command": command})


def _expected(size: int) -> bytes:
    import base64

    lines, n = [], 0
    while sum(map(len, lines)) < size:
        lines.append(base64.b64encode(hashlib.sha512(b"%d" % n).digest())[:63] + b"\n")
        n += 1
    return b"".join(lines)[:size]


def test_a_200_kb_kubeconfig_in_files_reaches_the_child_whole(tmp_path: Path) -> None:
    size = 200_000  # three Noise messages' worth
    profile = tmp_path / "kube.yaml"
    profile.write_text("credentials:\n  - domain: kube.example.com\n    env: {PW: password}\n"
                       "    files:\n      KUBECONFIG: {field: notes}\n")
    with _listener(tmp_path, size) as running:
        running.pair()
        result = running.run(str(profile), "--", "sh", "-c", 'sha256sum < "$KUBECONFIG"; echo "pw=$PW"')
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"{hashlib.sha256(_expected(size)).hexdigest()}  -\npw=***\n", result.stdout
        connect = running.run("connect", "--domain", "kube.example.com", "--output", "json")
        assert json.loads(connect.stdout)["credential"]["notes"].encode() == _expected(size)
        decisions = [e["decision"] for e in running.audit_events() if e["event"] == "request"]
        assert decisions == ["allowed", "allowed"]


def test_a_credential_over_the_limit_is_refused_in_words_and_audited_as_such(tmp_path: Path) -> None:
    profile = tmp_path / "kube.yaml"
    profile.write_text("credentials:\n  - domain: kube.example.com\n    files:\n      KUBECONFIG: {field: notes}\n")
    marker = tmp_path / "started"
    with _listener(tmp_path, 600_000) as running:
        running.pair()
        result = running.run(str(profile), "--", "touch", str(marker), check=False)
        assert result.returncode == 125 and not marker.exists(), result.stderr
        assert result.stderr.startswith("runwrap: the item for domain kube.example.com is ")
        assert result.stderr.endswith(" bytes with the fields asked for, more than the 512 KiB runwrap carries in "
                                      "one answer; ask for fewer fields, or keep a value that large elsewhere (a file "
                                      "the command reads)\n"), result.stderr
        events = [e for e in running.audit_events() if e["event"] == "request"]
        assert [e["decision"] for e in events] == ["error"]
        assert "more than the 512 KiB runwrap carries" in events[0]["reason"]
        small = running.run("run", "--domain", "kube.example.com", "--env", "PW=password", "--",
                            "sh", "-c", 'echo "pw=$PW"')  # the same session type still serves small answers
        assert small.stdout == "pw=***\n", small.stderr
