"""The real programs that take a credential only as a file, each reading one runwrap made in memory.

`ssh-keygen -y` loads an ed25519 private key from `$SSH_KEY` (and, like ssh, refuses one whose mode
lets others read it); `psql -w` logs in to a throwaway PostgreSQL with a `PGPASSFILE` (libpq checks
its mode too); `curl --netrc-file` authenticates to a local HTTP server with basic auth.
"""

from __future__ import annotations

import base64
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from runwrap.testing.listener import RunningListener
from tests.integration.files_support import profile, runwrap, vault_listener

DB_USER = "app_" + secrets.token_hex(4)
DB_PASSWORD = "db-" + secrets.token_hex(12)
WEB_USER = "web-" + secrets.token_hex(4)
WEB_PASSWORD = "web-" + secrets.token_hex(12)


@pytest.fixture(scope="module")
def ssh_key(tmp_path_factory) -> tuple[str, str]:
    """A fresh ed25519 key pair: (the private key's text, the public key's `type base64`)."""
    folder = tmp_path_factory.mktemp("ssh")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "runwrap-test", "-f", str(folder / "id")],
                   check=True, timeout=60)
    public = " ".join((folder / "id.pub").read_text().split()[:2])
    return (folder / "id").read_text(), public


@pytest.fixture(scope="module")
def vault(tmp_path_factory, ssh_key) -> Iterator[RunningListener]:
    items = [
        {"credential_id": "ssh-1", "domain": "git.internal", "username": "git", "notes": ssh_key[0]},
        {"credential_id": "db-1", "domain": "db.internal", "username": DB_USER, "password": DB_PASSWORD},
        {"credential_id": "web-1", "domain": "web.internal", "username": WEB_USER, "password": WEB_PASSWORD},
    ]
    listener = vault_listener(tmp_path_factory.mktemp("vault"), items)
    yield listener
    listener.cleanup()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else (shutil.which(name) or name)


@pytest.fixture(scope="module")
def postgres() -> Iterator[int]:
    """A throwaway PostgreSQL on a random loopback port, password (scram) auth over TCP; its port.

    initdb refuses to run as root, so as root it runs as the `postgres` user in a folder of its own.
    The role's password goes in on psql's stdin, never in a file or an argument.
    """
    as_user = {"user": "postgres", "group": "postgres", "extra_groups": []} if os.getuid() == 0 else {}
    folder = Path(tempfile.mkdtemp(prefix="rw-pg-", dir="/tmp"))
    if as_user:
        account = pwd.getpwnam("postgres")
        os.chown(folder, account.pw_uid, account.pw_gid)
    data, port = folder / "data", _free_port()
    env = {"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8", "HOME": str(folder)}

    def run(*argv: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, env=env, cwd=folder, text=True, capture_output=True, timeout=120, check=True,
                              **as_user, **kwargs)  # type: ignore[call-overload]

    run(_pg_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256")
    options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={folder}"
    run(_pg_bin("pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-o", options, "-w", "-t", "60", "start")
    try:
        run("psql", "-h", str(folder), "-p", str(port), "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1",
            input=f"CREATE ROLE {DB_USER} LOGIN PASSWORD '{DB_PASSWORD}';\n")
        yield port
    finally:
        subprocess.run([_pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "stop"], env=env, cwd=folder,
                       capture_output=True, timeout=60, check=False, **as_user)  # type: ignore[call-overload]
        shutil.rmtree(folder, ignore_errors=True)


SSH_PROFILE = """\
credentials:
  - domain: git.internal
    files:
      SSH_KEY: {field: notes%s}
"""


def test_ssh_keygen_reads_an_ed25519_key_from_the_file(vault, tmp_path, ssh_key):
    result = runwrap(vault, profile(tmp_path, SSH_PROFILE % ""), "--", "sh", "-c", 'ssh-keygen -y -f "$SSH_KEY"')
    assert result.returncode == 0, result.stderr
    assert " ".join(result.stdout.split()[:2]) == ssh_key[1]


def test_ssh_keygen_refuses_the_key_when_the_mode_lets_the_group_read(vault, tmp_path):
    # The mode really is the one asked for: ssh refuses a private key the group may read.
    result = runwrap(vault, profile(tmp_path, SSH_PROFILE % ', mode: "0640"'), "--", "sh", "-c",
                     'ssh-keygen -y -f "$SSH_KEY" < /dev/null')
    assert result.returncode != 0
    assert "UNPROTECTED PRIVATE KEY FILE" in result.stderr and "0640" in result.stderr


PG_PROFILE = """\
credentials:
  - domain: db.internal
    env: {PGUSER: username}
    files:
      PGPASSFILE: {template: "127.0.0.1:%d:*:{{username}}:{{password}}\\n", mode: "%s"}
"""


def test_psql_logs_in_with_a_pgpassfile(vault, tmp_path, postgres):
    path = profile(tmp_path, PG_PROFILE % (postgres, "0600"))
    result = runwrap(vault, path, "--", "psql", "-w", "-h", "127.0.0.1", "-p", str(postgres), "-d", "postgres",
                     "-tAc", "select 40 + 2")
    assert (result.returncode, result.stdout.strip()) == (0, "42"), result.stderr
    assert DB_PASSWORD not in result.stderr


def test_psql_ignores_a_pgpassfile_the_group_may_read(vault, tmp_path, postgres):
    path = profile(tmp_path, PG_PROFILE % (postgres, "0640"))
    result = runwrap(vault, path, "--", "psql", "-w", "-h", "127.0.0.1", "-p", str(postgres), "-d", "postgres",
                     "-tAc", "select 1")
    assert result.returncode != 0
    assert "has group or world access" in result.stderr


@pytest.fixture
def web() -> Iterator[tuple[int, list[str]]]:
    """A local HTTP server that wants basic auth as WEB_USER; its port and the Authorization headers seen."""
    seen: list[str] = []
    expected = "Basic " + base64.b64encode(f"{WEB_USER}:{WEB_PASSWORD}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            auth = self.headers.get("Authorization", "")
            seen.append(auth)
            ok = auth == expected
            body = f"hello {WEB_USER}\n".encode() if ok else b"who are you?\n"
            self.send_response(200 if ok else 401)
            if not ok:
                self.send_header("WWW-Authenticate", 'Basic realm="test"')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


NETRC_PROFILE = """\
credentials:
  - domain: web.internal
    files:
      NETRC: {template: "machine 127.0.0.1 login {{username}} password {{password}}\\n"}
"""


def test_curl_authenticates_with_a_netrc_file(vault, tmp_path, web):
    port, seen = web
    result = runwrap(vault, profile(tmp_path, NETRC_PROFILE), "--", "sh", "-c",
                     f'curl -sS -f --netrc-file "$NETRC" http://127.0.0.1:{port}/')
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello ***\n"  # the server echoes the user name; runwrap masks it
    assert seen == ["Basic " + base64.b64encode(f"{WEB_USER}:{WEB_PASSWORD}".encode()).decode()]


GIT_PROFILE = """\
credentials:
  - domain: git.internal
    files:
      SSH_KEY: {field: notes}
env:
  inherit: [PATH, HOME]
  set:
    GIT_SSH_COMMAND: %s
"""


def test_git_hands_the_key_to_its_ssh_command(vault, tmp_path, ssh_key):
    # docs/integrations.md's recipe, with the ssh replaced by ssh-keygen (no sshd here): git runs
    # GIT_SSH_COMMAND through the shell, which expands $SSH_KEY, and the key opens through /dev/fd.
    command = "'ssh-keygen -y -f \"$SSH_KEY\" >&2; exit 3; :'"
    result = runwrap(vault, profile(tmp_path, GIT_PROFILE % command), "--", "git", "ls-remote",
                     "ssh://git@git.internal/repo.git")
    assert result.returncode != 0  # git: the "ssh" did not talk to a server
    assert ssh_key[1] in result.stderr, result.stderr
