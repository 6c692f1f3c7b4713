"""`runwrap listen`: the process next to the vault that serves single credentials to paired peers.

One asyncio loop serves every connection. A connection starts with a preface naming its mode:
- session (Noise IK, runwrap.listener.sessions): a paired consumer asks for credentials, and may then hold a
  lease while its child runs; the listener can end the lease at any time (revocation, maximum length);
- pair (SPAKE2 + Noise NNpsk0, runwrap.listener.invites): a consumer with a one-time code becomes a peer;
- control (plain JSON, Unix socket, same uid only, runwrap.listener.control): `invite`, `peers revoke`,
  `peers scope`, status.
This module makes the state the parts share (runwrap.listener.state) and wires each part to the pieces
it uses; then it binds, accepts, bounds and dispatches connections, and shuts down. Any error ends
that one connection, never the listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from runwrap.errors import ProtocolError, RunwrapError
from runwrap.listener import locator
from runwrap.listener.approval import Approver
from runwrap.listener.audit import AuditError
from runwrap.listener.control import Control
from runwrap.listener.invites import Pairing
from runwrap.listener.sessions import Sessions
from runwrap.listener.state import ListenerState
from runwrap.paths import Layout, folder_for_files
from runwrap.providers.base import Provider
from runwrap.wire import framing
from runwrap.wire.address import tcp_address

MAX_CONNECTIONS = 2048


@dataclass
class Options:
    provider_name: str = "example"
    approve: str = "never"
    rate: tuple[int, float] = (120, 60.0)  # 120/1m: 120 different items a minute per peer
    max_lease: float | None = None
    tcp: tuple[str, int] | None = None
    socket_path: Path | None = None
    audit_path: Path | None = None
    approve_ttl: float = 3600.0  # --approve first remembers an answer this long
    approve_timeout: float = 120.0  # an unanswered question is a no
    watch_interval: float = 30.0  # seconds between checks of what watched leases were served (rotation)


class Listener:
    """One listener: the shared state (runwrap.listener.state) and the parts wired to it.

    Each part gets only the pieces it uses, as explicit arguments, so none of them imports this
    module; this one binds, accepts and hands each connection to the part its preface names.
    """

    def __init__(self, layout: Layout, provider: Provider, options: Options,
                 *, out: Callable[[str], None] | None = None,
                 ask: Callable[[str], bool] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.layout = layout
        self.provider = provider
        self.options = options
        self.out = out or (lambda line: print(line, flush=True))
        self.state = state = ListenerState(layout, options.audit_path, handshakes=MAX_CONNECTIONS // 4)
        approver = Approver(options.approve, ttl=options.approve_ttl, timeout=options.approve_timeout, ask=ask)
        self.sessions = Sessions(private_key=state.keys.private, peers=state.peers, audit=state.audit,
                                 handshaking=state.handshaking, leases=state.leases, provider=provider,
                                 provider_name=options.provider_name, approver=approver, rate=options.rate,
                                 max_lease=options.max_lease, clock=clock, watch_interval=options.watch_interval)
        self.pairing = Pairing(keys=state.keys, peers=state.peers, invites=state.invites, audit=state.audit,
                               handshaking=state.handshaking, out=self.out)
        self.control = Control(peers=state.peers, audit=state.audit, leases=state.leases, invites=state.invites,
                               end_lease=self.sessions.end_lease, address=lambda: self.address,
                               provider_name=options.provider_name)
        self.connections = 0
        self.socket_path = options.socket_path or layout.socket
        self._servers: list[asyncio.AbstractServer] = []
        self._stopped: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # one per open connection, ended at shutdown

    @property
    def address(self) -> str:
        if self.options.tcp:
            return tcp_address(*self.options.tcp)  # tcp:[::1]:PORT for IPv6
        return f"unix:{self.socket_path}"

    # ---- serving ----

    async def serve(self) -> None:
        import resource
        import stat

        self._stopped = asyncio.Event()
        folder_for_files(self.socket_path.parent)
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
        # Room for MAX_CONNECTIONS sockets: a listener that runs out of descriptors stops accepting.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < MAX_CONNECTIONS + 256:
            want = MAX_CONNECTIONS + 256 if hard == resource.RLIM_INFINITY else min(hard, MAX_CONNECTIONS + 256)
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        if self.options.tcp:
            host, port = self.options.tcp
            try:
                tcp = await asyncio.start_server(self._accept_tcp, host=host, port=port,
                                                 limit=framing.MAX_FRAME + 16, backlog=1024)
            except OSError as exc:  # in use, not an address of this host, a privileged port
                unix.close()
                with contextlib.suppress(FileNotFoundError):
                    self.socket_path.unlink()
                fix = ("pick another port (--tcp HOST:0 lets the system choose one)" if exc.errno == errno.EADDRINUSE
                       else "give an address of this host, e.g. --tcp 127.0.0.1:7777")
                raise RunwrapError(f"cannot listen on {tcp_address(host, port)}: {_why(exc)} — {fix}") from None
            self._servers.append(tcp)
            if port == 0:
                port = tcp.sockets[0].getsockname()[1]
                self.options.tcp = (host, port)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with contextlib.suppress(RuntimeError):  # not the main thread (embedded in a test)
                loop.add_signal_handler(signum, self._stopped.set)
        addresses = dict.fromkeys([self.address, f"unix:{self.socket_path}"])
        locator.record(self.layout, locator.Whereabouts(self.socket_path, os.getpid(), tuple(addresses),
                                                        self.options.audit_path or self.layout.audit_log))
        self.out(f"runwrap: listening on {self.address} (provider {self.options.provider_name})")
        if self.options.tcp:
            self.out(f"runwrap: local control on unix:{self.socket_path}")
        if not self.state.peers.by_name:  # no code here: a code would have to guess the scope, i.e. grant *
            self.out("runwrap: no peers yet; invite one with `runwrap invite --name NAME --scope PATTERN` "
                     "(e.g. --scope github.com; --scope '*' for everything)")
        syncer = asyncio.create_task(self.state.audit.follow())
        watcher = asyncio.create_task(self.sessions.watch.run())
        try:
            await self._stopped.wait()
        finally:
            syncer.cancel()
            watcher.cancel()
            for server in self._servers:
                server.close()
            await self.sessions.dynamic.stop()  # dynamic secrets die with the leases they were served to
            for lease in self.state.leases.all():
                self.sessions.record_lease_end(lease, "the listener stopped")
                lease.writer.close()
            await self._end_connections()
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()
            locator.forget(self.layout, os.getpid())
            with contextlib.suppress(AuditError, OSError):
                self.state.audit.close()
            self.provider.close()

    async def _end_connections(self) -> None:
        """Cancel every connection's task and wait for each to finish its `finally`, so none is left for
        asyncio.run to cancel behind our back (a traceback on stderr) after the audit log is closed."""
        tasks = [task for task in self._tasks if not task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)

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
                self.state.audit.write("handshake_failed", decision="denied",
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

        Until its handshake completes a connection is in the state's `handshaking` table, which
        makes room by dropping the oldest (runwrap.listener.state.Handshaking).
        """
        if self.connections >= MAX_CONNECTIONS:
            writer.close()
            return
        self.connections += 1
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        handshaking = self.state.handshaking
        # One deadline for the whole handshake, however the peer spreads its bytes: the table closes the
        # connection when it passes, so the reads up to the end of the handshake need no timeout.
        deadline = time.monotonic() + framing.HANDSHAKE_TIMEOUT
        handshaking.admit(writer, framing.HANDSHAKE_TIMEOUT)
        try:
            mode = framing.parse_preface(await reader.readexactly(framing.PREFACE_LEN))
            if mode == framing.MODE_SESSION:
                await self.sessions.serve(reader, writer)
            elif mode == framing.MODE_PAIR:
                handshaking.untimed(writer)  # its reads keep the longer deadline themselves
                await self.pairing.pair(reader, writer, deadline + 2 * framing.HANDSHAKE_TIMEOUT)
            elif local:
                handshaking.done(writer)
                await self.control.serve(reader, writer)
            else:
                raise ProtocolError("control connections are only accepted on the local socket")
        except (ProtocolError, AuditError, OSError, asyncio.IncompleteReadError):
            pass  # one connection's failure is that connection's; it was audited where it mattered
        except asyncio.CancelledError:
            pass  # shutdown (_end_connections); a task left cancelled makes 3.11's streams print a traceback
        except Exception as exc:  # a bug must end this connection, not the listener, and show no value
            print(f"runwrap: internal error on one connection ({type(exc).__name__}); it was closed",
                  file=sys.stderr, flush=True)
        finally:
            handshaking.done(writer)
            self.connections -= 1
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def run(listener: Listener) -> None:
    asyncio.run(listener.serve())


def _why(exc: OSError) -> str:
    """An OSError's reason alone (asyncio's bind error repeats the address in its text)."""
    if isinstance(exc, socket.gaierror) or not exc.errno:
        return str(exc.strerror or exc)
    return os.strerror(exc.errno).lower()
