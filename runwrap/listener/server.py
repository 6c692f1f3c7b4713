"""`runwrap listen`: the process next to the vault that serves single credentials to paired peers.

One asyncio loop serves every connection. A connection starts with a preface naming its mode:
- session (Noise IK, runwrap.listener.sessions): a paired consumer asks for credentials, and may then hold a
  lease while its child runs; the listener can end the lease at any time (revocation, maximum length);
- pair (SPAKE2 + Noise NNpsk0, runwrap.listener.invites): a consumer with a one-time code becomes a peer;
- control (plain JSON, Unix socket, same uid only, runwrap.listener.control): `invite`, `peers revoke`,
  `peers scope`, status.
This module binds, accepts, bounds and dispatches connections, keeps the state they share, writes the
audit log, and shuts down. Any error ends that one connection, never the listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runwrap.errors import ProtocolError, RunwrapError
from runwrap.listener import control, invites, policy, sessions
from runwrap.listener.approval import Approvals
from runwrap.listener.audit import AuditError, AuditLog
from runwrap.listener.invites import DEFAULT_INVITE_TTL, Invite
from runwrap.listener.peers import Peers
from runwrap.listener.sessions import LeaseState
from runwrap.paths import Layout, private_dir
from runwrap.store import load_or_create_identity
from runwrap.wire import framing, noise_session

MAX_CONNECTIONS = 2048
DEFAULT_RATE = "120/1m"


@dataclass
class Options:
    provider_name: str = "example"
    approve: str = "never"
    rate: tuple[int, float] = (120, 60.0)  # 120/1m: a burst of 120, then two a second, per peer
    max_lease: float | None = None
    tcp: tuple[str, int] | None = None
    socket_path: Path | None = None
    audit_path: Path | None = None
    approve_ttl: float = 3600.0  # --approve first remembers an answer this long
    approve_timeout: float = 120.0  # an unanswered question is a no


class Listener:
    def __init__(self, layout: Layout, provider: Any, options: Options,
                 *, out: Callable[[str], None] | None = None,
                 ask: Callable[[str], bool] | None = None) -> None:
        self.layout = layout
        self.provider = provider
        self.options = options
        self.out = out or (lambda line: print(line, flush=True))
        self.ask = ask
        private_dir(layout.config)
        self.private = load_or_create_identity(layout.listener_key)
        self.public = noise_session.public_key(self.private)
        self.peers = Peers(layout.peers)
        self.audit = AuditLog(options.audit_path or layout.audit_log)
        self.audit_broken: str | None = None
        self.invites: dict[str, Invite] = {}
        self.leases: dict[str, dict[str, LeaseState]] = {}
        self.buckets: dict[str, policy.TokenBucket] = {}
        self.pair_failures: list[float] = []
        self.approvals = Approvals()
        self.connections = 0
        self.socket_path = options.socket_path or layout.socket
        self._servers: list[asyncio.AbstractServer] = []
        self._stopped: asyncio.Event | None = None

    # ---- addresses and invites ----

    @property
    def address(self) -> str:
        if self.options.tcp:
            host, port = self.options.tcp
            return f"tcp:{host}:{port}"
        return f"unix:{self.socket_path}"

    def invite(self, name: str | None, scope: list[str], ttl: float) -> Invite:
        return invites.issue(self.invites, name, scope, ttl)

    # ---- serving ----

    async def serve(self) -> None:
        import resource
        import stat

        self._stopped = asyncio.Event()
        private_dir(self.socket_path.parent)
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISSOCK(os.lstat(self.socket_path).st_mode):
                raise RunwrapError(f"{self.socket_path} exists and is not a socket; move it away")
            if self._socket_in_use():
                raise RunwrapError(f"a listener is already running on {self.socket_path}")
            self.socket_path.unlink()
        # The socket file is created by bind() with the process umask: 0177 leaves it 0600 from the
        # first instant. The umask is changed around that one bind() call, before any thread of ours
        # runs, in a folder that is 0700 and ours anyway; the mode is then checked, not assumed.
        unix_sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            unix_sock.bind(str(self.socket_path))
        except OSError as exc:
            unix_sock.close()
            raise RunwrapError(f"cannot listen on {self.socket_path}: {exc.strerror}") from None
        finally:
            os.umask(old)
        info = os.lstat(self.socket_path)
        if stat.S_IMODE(info.st_mode) != 0o600 or info.st_uid != os.getuid():
            unix_sock.close()
            raise RunwrapError(f"{self.socket_path} came out with mode {stat.S_IMODE(info.st_mode):o} "
                               "instead of 600; refusing to serve")
        # A deep backlog: a burst of connections must queue, not be refused, while the loop accepts.
        unix = await asyncio.start_unix_server(self._accept_unix, sock=unix_sock, limit=framing.MAX_FRAME + 16,
                                               backlog=1024)
        self._servers.append(unix)
        self.handshaking: dict[asyncio.StreamWriter, float] = {}
        # Room for MAX_CONNECTIONS sockets: a listener that runs out of descriptors stops accepting.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < MAX_CONNECTIONS + 256:
            want = MAX_CONNECTIONS + 256 if hard == resource.RLIM_INFINITY else min(hard, MAX_CONNECTIONS + 256)
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        if self.options.tcp:
            host, port = self.options.tcp
            tcp = await asyncio.start_server(self._accept_tcp, host=host, port=port,
                                             limit=framing.MAX_FRAME + 16, backlog=1024)
            self._servers.append(tcp)
            if port == 0:
                port = tcp.sockets[0].getsockname()[1]
                self.options.tcp = (host, port)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with contextlib.suppress(RuntimeError):  # not the main thread (embedded in a test)
                loop.add_signal_handler(signum, self._stopped.set)
        self.out(f"runwrap: listening on {self.address} (provider {self.options.provider_name})")
        if self.options.tcp:
            self.out(f"runwrap: local control on unix:{self.socket_path}")
        if not self.peers.by_name:
            invite = self.invite(None, ["*"], DEFAULT_INVITE_TTL)
            self.out(f"runwrap: no peers yet; pair a consumer within 5 minutes with:\n"
                     f"    runwrap pair {invite.code} --address {self.address}")
        syncer = asyncio.create_task(self._sync_audit())
        try:
            await self._stopped.wait()
        finally:
            syncer.cancel()
            for server in self._servers:
                server.close()
            for leases in list(self.leases.values()):
                for state in list(leases.values()):
                    state.writer.close()
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()
            with contextlib.suppress(AuditError, OSError):
                self.audit.close()
            close = getattr(self.provider, "close", None)
            if close:
                close()

    def stop(self) -> None:
        if self._stopped is not None:
            self._stopped.set()

    def _socket_in_use(self) -> bool:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(2.0)  # a hung listener with a full backlog still counts as running
        try:
            probe.connect(str(self.socket_path))
            return True
        except TimeoutError:
            return True
        except OSError:  # ECONNREFUSED: a stale file left by a listener that died
            return False
        finally:
            probe.close()

    async def _sync_audit(self) -> None:
        """Every second: follow a rotated or recreated log file, then fsync it off the loop."""
        while True:
            await asyncio.sleep(1.0)
            try:
                self.audit.check()  # on the loop: it may swap the fd that writes use
                await asyncio.to_thread(self.audit.sync)  # an fsync can take a while; requests go on
            except AuditError as exc:
                self._audit_failed(exc)

    def _audit_failed(self, exc: AuditError) -> None:
        if self.audit_broken is None:
            print(f"runwrap: {exc}; refusing requests until it can be written", file=sys.stderr, flush=True)
        self.audit_broken = str(exc)

    def log(self, event: str, **fields: Any) -> None:
        """Audit, failing closed: a write that fails stops the answer it would describe."""
        try:
            self.audit.write(event, **fields)
        except AuditError as exc:
            self._audit_failed(exc)
            raise
        if self.audit_broken is not None:
            self.audit_broken = None
            print(f"runwrap: the audit log {self.audit.path} can be written again; serving requests",
                  file=sys.stderr, flush=True)

    async def _accept_unix(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The socket's 0700 folder already keeps other users out; SO_PEERCRED (taken by the kernel at
        # connect time, not claimed by the peer) is the second lock, for a folder someone loosened.
        sock = writer.get_extra_info("socket")
        try:
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            pid, uid, _gid = struct.unpack("3i", creds)
        except (OSError, AttributeError, struct.error):
            pid, uid = 0, -1
        if uid != os.getuid():
            with contextlib.suppress(AuditError):
                self.log("handshake_failed", decision="denied",
                         reason=f"a process of uid {uid} (pid {pid}) is not allowed on this socket")
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            return
        await self._accept(reader, writer, local=True)

    async def _accept_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        with contextlib.suppress(OSError, AttributeError):  # a consumer whose host vanished frees its slot
            framing.set_keepalive(sock, 10, 5, 3)
        await self._accept(reader, writer, local=False)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, local: bool) -> None:
        """One connection, start to end. Whatever it sends, only it is torn down.

        Until its handshake completes a connection sits in `handshaking`, oldest first; when that
        table is full the oldest unauthenticated connection is dropped to make room, so idle or
        slow-loris connections can delay nobody, and each one is dropped at its deadline anyway.
        """
        if self.connections >= MAX_CONNECTIONS:
            writer.close()
            return
        self.connections += 1
        pending: dict[asyncio.StreamWriter, float] = getattr(self, "handshaking", {})
        if len(pending) >= MAX_CONNECTIONS // 4:
            oldest = next(iter(pending))
            del pending[oldest]
            oldest.close()  # its own task sees EOF and ends
        pending[writer] = time.monotonic()
        # One deadline for the whole handshake, however the peer spreads its bytes.
        deadline = time.monotonic() + framing.HANDSHAKE_TIMEOUT
        try:
            mode = await framing.read_preface(reader, framing.HANDSHAKE_TIMEOUT, deadline=deadline)
            if mode == framing.MODE_SESSION:
                await sessions.serve(self, reader, writer, deadline)
            elif mode == framing.MODE_PAIR:
                await invites.pair(self, reader, writer, deadline + 2 * framing.HANDSHAKE_TIMEOUT)
            elif local:
                pending.pop(writer, None)
                await control.serve(self, reader, writer)
            else:
                raise ProtocolError("control connections are only accepted on the local socket")
        except (ProtocolError, AuditError, OSError, asyncio.IncompleteReadError):
            pass  # one connection's failure is that connection's; it was audited where it mattered
        except Exception as exc:  # a bug must end this connection, not the listener, and show no value
            print(f"runwrap: internal error on one connection ({type(exc).__name__}); it was closed",
                  file=sys.stderr, flush=True)
        finally:
            pending.pop(writer, None)
            self.connections -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def reject(self, writer: asyncio.StreamWriter, code: str, message: str) -> None:
        """Refuse a handshake (session or pair) with a code and a message the consumer shows."""
        body = json.dumps({"code": code, "message": message}).encode()
        writer.write(framing.encode(framing.REJECT + body))
        with contextlib.suppress(OSError):
            await writer.drain()


def run(listener: Listener) -> None:
    asyncio.run(listener.serve())
