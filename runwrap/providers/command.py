"""The `command` provider: any executable answers a query with one credential as JSON.

`runwrap listen --provider command --provider-option command='/path/to/script --flag'` runs the
script once per lookup (no shell: the option is split with `shlex` and the program resolved on the
listener's PATH at start). The script gets the query on stdin, `{"domain": "github.com"}` or
`{"id": "..."}`, and prints one JSON object:

    {"username": ..., "password": ..., "totp": <seed or otpauth URI>, "uri": ..., "notes": ...,
     "credential_id": ..., "domain": ...}

Every key is optional. To say "no such item" it exits 1 after printing `{"error": "not_found"}`.
Anything else — another status, output that is not that JSON, the `timeout` (default 10 s) — is a
ProviderError that names the program and the status and shows none of its output, which may hold
the secret. The script inherits the listener's environment, since that is where the tokens its
vault CLI needs live; its stdout is wiped once parsed.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess

from runwrap.credential import Item, Query, is_field_name
from runwrap.errors import NotFound, ProviderError
from runwrap.providers.base import Provider
from runwrap.secret import Secret, wipe_bytes

DEFAULT_TIMEOUT = 10.0
MAX_OUTPUT = 1 << 20  # a credential is small; more than this is a broken script


class CommandProvider(Provider):
    """Runs a program of the user's per lookup; see the module docstring for the protocol."""

    name = "command"
    options = {
        "command": "the program and its arguments (shlex-split, no shell); gets the query as JSON on stdin",
        "timeout": f"seconds a lookup may take (default {DEFAULT_TIMEOUT:g})",
    }

    @classmethod
    def needs(cls) -> str | None:
        return "--provider-option command='PROGRAM [ARGS]' (see docs/providers.md)"

    def configure(self) -> None:
        text = self.option_values.get("command", "").strip()
        if not text:
            raise ProviderError(
                "provider command needs --provider-option command='PROGRAM [ARGS]' (see docs/providers.md)"
            )
        try:
            argv = shlex.split(text)
        except ValueError as exc:
            raise ProviderError(f"provider command: cannot split the command option: {exc}") from None
        program = shutil.which(argv[0])
        if program is None:
            raise ProviderError(f"provider command: {argv[0]!r} is not an executable file or on PATH")
        self.argv = [program, *argv[1:]]
        try:
            self.timeout = float(self.option_values.get("timeout", DEFAULT_TIMEOUT))
        except ValueError:
            raise ProviderError("provider command: the timeout option must be a number of seconds") from None
        if self.timeout <= 0:
            raise ProviderError("provider command: the timeout option must be positive")
        self._label = os.path.basename(program)

    def lookup(self, query: Query) -> Item:
        request = json.dumps(query.to_wire()).encode()
        status, out = self._run(request)
        try:
            if status == 0:
                return self._item(query, out)
            if status == 1 and _is_not_found(out):
                raise NotFound(f"command {self._label}: no item for {query}")
            raise ProviderError(
                f"provider command: {self._label} exited with status {status} for {query} "
                "(its output is not shown; run it by hand to see it)"
            )
        finally:
            wipe_bytes(out)

    def _run(self, request: bytes) -> tuple[int, bytes]:
        try:
            # Its own session, so a timeout ends the whole process group, not just the script.
            proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            raise ProviderError(f"provider command: cannot run {self._label}: {exc.strerror}") from None
        try:
            out, _ = proc.communicate(request, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise ProviderError(
                f"provider command: {self._label} took longer than {self.timeout:g}s and was stopped"
            ) from None
        return proc.returncode, out

    def _item(self, query: Query, out: bytes) -> Item:
        if len(out) > MAX_OUTPUT:
            raise ProviderError(f"provider command: {self._label} printed more than {MAX_OUTPUT} bytes")
        try:
            data = json.loads(out)
        except (ValueError, UnicodeDecodeError):
            data = None
        if not isinstance(data, dict) or not all(isinstance(v, (str, type(None))) for v in data.values()):
            raise ProviderError(
                f"provider command: {self._label} did not print a JSON object of strings (output not shown)"
            )
        fields: dict[str, str] = {k: v for k, v in data.items() if isinstance(v, str)}
        data.clear()
        credential_id = fields.get("credential_id") or query.id or str(query.domain)
        domain = fields.get("domain") or query.domain or ""
        return Item(
            credential_id=credential_id,
            domain=domain,
            username=fields.get("username", ""),
            password=Secret(fields.get("password", "")),
            totp_secret=Secret(fields["totp"]) if fields.get("totp") else None,
            uri=fields.get("uri", ""),
            notes=Secret(fields["notes"]) if fields.get("notes") else None,
            extra={key: Secret(value) for key, value in fields.items() if is_field_name(key) and value},
        )


def _is_not_found(out: bytes) -> bool:
    try:
        data = json.loads(out)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and data.get("error") == "not_found"


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    # Only called before the script is reaped, so its pid still names its group.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
