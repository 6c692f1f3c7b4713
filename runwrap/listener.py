"""`runwrap listen`: the process next to the vault that serves single credentials to paired peers.

One asyncio loop serves every connection. A connection starts with a preface naming its mode:
- session (Noise IK): a paired consumer asks for credentials, and may then hold a lease while its
  child runs; the listener can end the lease at any time (revocation, maximum lease length);
- pair (SPAKE2 + Noise NNpsk0): a consumer with a one-time code becomes a peer;
- control (plain JSON, Unix socket, same uid only): `invite`, `peers revoke`, `peers scope`, status.
Every request is checked against the peer's scope, rate limit and approval before the provider is
asked, and audited before the answer leaves. Any error ends that one connection, never the listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runwrap import framing, messages, noise_session, pairing, policy
from runwrap.audit import AuditError, AuditLog
from runwrap.credential import FIELDS, Item, Query
from runwrap.errors import NotFound, ProtocolError, ProviderError, RunwrapError
from runwrap.paths import Layout, private_dir
from runwrap.secret import Secret, wipe_bytes
from runwrap.store import Peer, Peers, fingerprint, load_or_create_identity

HANDSHAKE_TIMEOUT = 5.0
REQUEST_IDLE_TIMEOUT = 60.0
MAX_CONNECTIONS = 2048
PAIR_FAILURES_PER_MINUTE = 5
DEFAULT_RATE = "120/1m"
DEFAULT_INVITE_TTL = 300.0


@dataclass
class Invite:
    nameplate: str
    code: str
    name: str | None
    scope: list[str]
    expires_at: float

    @property
    def expires_rfc3339(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.expires_at))


@dataclass
class LeaseState:
    lease: str
    peer: str
    started: float
    writer: asyncio.StreamWriter
    session: noise_session.Session
    held: bool = False
    ended: bool = False
    timer: asyncio.TimerHandle | None = None
    claim: dict[str, str] | None = None  # what the consumer said it runs under this lease (HOLD)


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


@dataclass
class _Pending:
    """Approvals asked on the listener's terminal, one at a time; `first` answers, remembered."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    remembered: dict[tuple[str, str], tuple[bool, float]] = field(default_factory=dict)


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
        self.approvals = _Pending()
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
        now = time.time()
        for key in [k for k, inv in self.invites.items() if inv.expires_at <= now]:
            del self.invites[key]
        scope = [policy.check_pattern(p) for p in scope] or ["*"]
        while True:
            nameplate, code = pairing.new_code()
            if nameplate not in self.invites:
                break
        invite = Invite(nameplate, code, name, scope, now + ttl)
        self.invites[nameplate] = invite
        return invite

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
        self._handshaking: dict[asyncio.StreamWriter, float] = {}
        self._peers_seen: tuple[int, int, int] | None = None
        with contextlib.suppress(OSError):  # what _session compares peers.json against
            info = os.stat(self.peers.path)
            self._peers_seen = (info.st_ino, info.st_mtime_ns, info.st_size)
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

    def _log(self, event: str, **fields: Any) -> None:
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
                self._log("handshake_failed", decision="denied",
                          reason=f"a process of uid {uid} (pid {pid}) is not allowed on this socket")
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            return
        await self._accept(reader, writer, local=True)

    async def _accept_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        with contextlib.suppress(OSError, AttributeError):  # a consumer whose host vanished frees its slot
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 10)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 5)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
        await self._accept(reader, writer, local=False)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, local: bool) -> None:
        """One connection, start to end. Whatever it sends, only it is torn down.

        Until its handshake completes a connection sits in `_handshaking`, oldest first; when that
        table is full the oldest unauthenticated connection is dropped to make room, so idle or
        slow-loris connections can delay nobody, and each one is dropped at its deadline anyway.
        """
        if self.connections >= MAX_CONNECTIONS:
            writer.close()
            return
        self.connections += 1
        pending: dict[asyncio.StreamWriter, float] = getattr(self, "_handshaking", {})
        if len(pending) >= MAX_CONNECTIONS // 4:
            oldest = next(iter(pending))
            del pending[oldest]
            oldest.close()  # its own task sees EOF and ends
        pending[writer] = time.monotonic()
        # One deadline for the whole handshake, however the peer spreads its bytes.
        deadline = time.monotonic() + HANDSHAKE_TIMEOUT
        try:
            mode = await framing.read_preface(reader, HANDSHAKE_TIMEOUT, deadline=deadline)
            if mode == framing.MODE_SESSION:
                await self._session(reader, writer, deadline)
            elif mode == framing.MODE_PAIR:
                await self._pair(reader, writer, deadline + 2 * HANDSHAKE_TIMEOUT)
            elif local:
                pending.pop(writer, None)
                await self._control(reader, writer)
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

    # ---- sessions ----

    async def _reject(self, writer: asyncio.StreamWriter, code: str, message: str) -> None:
        body = json.dumps({"code": code, "message": message}).encode()
        writer.write(framing.encode(framing.REJECT + body))
        with contextlib.suppress(OSError):
            await writer.drain()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       deadline: float | None = None) -> None:
        """Noise IK as responder. The initiator's key is looked up among the peers, and an unknown,
        removed or revoked key (or a message 1 with a payload) is refused and audited before a
        single transport message is read."""
        first = await framing.read_frame(reader, timeout=HANDSHAKE_TIMEOUT, deadline=deadline,
                                         max_len=framing.MAX_HANDSHAKE_FRAME)
        handshake = noise_session.responder_ik(self.private)
        try:
            payload = handshake.read(first)
        except ProtocolError:
            self._log("handshake_failed", decision="denied",
                      reason="message 1 did not verify (wrong listener key or not runwrap)")
            await self._reject(writer, "cannot_decrypt", "this listener's key is not the one you pinned")
            return
        remote = handshake.remote_static or b""
        # peers.json may have been edited by hand (a peer removed): follow it, failing closed.
        try:
            info = os.stat(self.peers.path)
            seen: tuple[int, int, int] | None = (info.st_ino, info.st_mtime_ns, info.st_size)
        except OSError:
            seen = None
        if seen != getattr(self, "_peers_seen", seen):
            try:
                self.peers = Peers(self.peers.path)
            except RunwrapError as exc:
                self._log("handshake_failed", peer_fp=fingerprint(remote), decision="error",
                          reason=f"the peers file cannot be read: {exc}")
                await self._reject(writer, "error", "the listener cannot read its peers file")
                return
        self._peers_seen = seen
        peer = self.peers.by_key(remote)
        if payload or peer is None or peer.revoked:
            why = ("message 1 carried a payload" if payload else
                   "peer was revoked" if peer is not None else "unknown key")
            self._log("handshake_failed", peer=peer.name if peer else None, peer_fp=fingerprint(remote),
                      decision="revoked" if peer is not None and peer.revoked else "denied", reason=why)
            await self._reject(writer, "unknown_peer", "this consumer is not a peer of the listener "
                               "(never paired, removed or revoked); pair again with a fresh invite")
            return
        getattr(self, "_handshaking", {}).pop(writer, None)  # authenticated: never dropped as idle
        writer.write(framing.encode(framing.ACCEPT + handshake.write()))
        await writer.drain()
        session = handshake.session()
        state = LeaseState(lease=secrets.token_hex(8), peer=peer.name, started=time.monotonic(),
                           writer=writer, session=session)
        self.leases.setdefault(peer.name, {})[state.lease] = state
        try:
            await self._serve_session(reader, state)
        finally:
            if state.timer:
                state.timer.cancel()
            self.leases.get(peer.name, {}).pop(state.lease, None)
            if state.held and not state.ended:
                with contextlib.suppress(AuditError):
                    self._log("lease_end", peer=peer.name, peer_fp=fingerprint(remote), lease=state.lease,
                              reason="connection closed before the consumer reported an exit",
                              duration_ms=int((time.monotonic() - state.started) * 1000))

    async def _serve_session(self, reader: asyncio.StreamReader, state: LeaseState) -> None:
        while not state.ended:
            timeout = None if state.held else REQUEST_IDLE_TIMEOUT
            try:
                frame = await framing.read_frame(reader, timeout=timeout)
            except ProtocolError:
                return
            header, _ = messages.decode(state.session.decrypt(frame))
            kind = header["type"]
            if kind == messages.REQUEST and not state.held:
                await self._request(state, header)
            elif kind == messages.HOLD and not state.held:
                self._hold(state, header)
            elif kind == messages.LEASE_END and state.held:
                state.ended = True
                peer = self.peers.by_name.get(state.peer)
                # The duration is the listener's own measure; the exit status is the consumer's word.
                self._log("lease_end", peer=state.peer, peer_fp=_fp(peer), lease=state.lease,
                          exit=_int(header.get("exit")), provenance=state.claim,
                          duration_ms=int((time.monotonic() - state.started) * 1000))
                return
            else:
                raise ProtocolError(f"unexpected message {kind!r}")

    def _hold(self, state: LeaseState, header: dict[str, Any]) -> None:
        state.held = True
        state.started = time.monotonic()
        state.claim = _claim(header.get("provenance"))
        peer = self.peers.by_name.get(state.peer)
        if peer is None or peer.revoked:
            self._end_lease(state, "peer revoked")
        elif self.options.max_lease:
            loop = asyncio.get_running_loop()
            state.timer = loop.call_later(self.options.max_lease, self._end_lease, state,
                                          f"maximum lease length ({self.options.max_lease:g}s) reached")

    def _end_lease(self, state: LeaseState, reason: str) -> None:
        """End a lease from the listener's side: the consumer stops its child at once."""
        if state.ended:
            return
        state.ended = True
        if state.timer:
            state.timer.cancel()
        # Revocation must work even when the audit log cannot be written: never let that stop it.
        with contextlib.suppress(AuditError):
            self._log("revoke", peer=state.peer, peer_fp=_fp(self.peers.by_name.get(state.peer)),
                      lease=state.lease, decision="revoked", reason=reason, provenance=state.claim,
                      duration_ms=int((time.monotonic() - state.started) * 1000) if state.held else None)
        with contextlib.suppress(Exception):
            state.writer.write(framing.encode(state.session.encrypt(
                messages.encode({"type": messages.REVOKE, "reason": reason}))))
        state.writer.close()

    async def _request(self, state: LeaseState, header: dict[str, Any]) -> None:
        """Check, approve, look up, audit, answer — in that order; nothing leaves unaudited."""
        try:
            await self._answer(state, header)
        except AuditError as exc:
            # Fail closed, and say why: the refusal itself carries no secret, so it may go unlogged.
            await self._send_error(state, "error", f"the listener cannot write its audit log, so it refuses "
                                   f"requests until it can ({exc})")

    async def _answer(self, state: LeaseState, header: dict[str, Any]) -> None:
        peer = self.peers.by_name.get(state.peer)
        base: dict[str, Any] = {"peer": state.peer, "peer_fp": _fp(peer), "lease": state.lease,
                                "provenance": _claim(header.get("provenance"))}
        try:
            query = Query.from_wire(header.get("query"))
        except ValueError as exc:
            self._log("request", **base, decision="error", reason=f"bad query: {exc}")
            await self._send_error(state, "error", f"bad request: {exc}")
            return
        wanted = header.get("fields") or list(FIELDS)
        if not isinstance(wanted, list) or not all(f in FIELDS for f in wanted):
            self._log("request", **base, query=query.to_wire(), decision="error", reason="unknown field")
            await self._send_error(state, "error", f"bad request: fields must be among {', '.join(FIELDS)}")
            return
        base.update(query=query.to_wire(), fields=wanted)
        decision, code, reason, retry = self._decide(peer, query)
        if decision == "allowed" and not await self._approve(state.peer, query, wanted, base["provenance"]):
            decision, code, reason = "denied", "denied", f"{query} was not approved on the listener"
        if decision == "allowed":
            # The peer may have been revoked or rescoped while the question was open.
            decision, code, reason, retry = self._decide(self.peers.by_name.get(state.peer), query,
                                                         state=state, take=False)
        if decision != "allowed":
            self._log("request", **base, decision=decision, reason=reason)
            await self._send_error(state, code, reason, retry_after=retry)
            return
        try:
            item = await asyncio.get_running_loop().run_in_executor(None, self.provider.lookup, query)
        except NotFound:
            self._log("request", **base, decision="not_found", reason=f"no item for {query}")
            await self._send_error(state, "not_found", f"the vault has no item for {query}")
            return
        except RunwrapError as exc:
            self._log("request", **base, decision="error", reason=str(exc))
            await self._send_error(state, "provider", str(exc))
            return
        except Exception as exc:  # a provider bug must not take the listener down or leak a value
            self._log("request", **base, decision="error", reason=f"provider failed: {type(exc).__name__}")
            await self._send_error(state, "provider", f"the {self.options.provider_name} provider failed "
                                   f"({type(exc).__name__}); see the listener's output")
            return
        try:
            decision, code, reason, retry = self._decide(self.peers.by_name.get(state.peer), query,
                                                         state=state, take=False)
            if decision != "allowed":  # revoked (or rescoped) while the provider worked
                self._log("request", **base, decision=decision, reason=reason)
                await self._send_error(state, code, reason)
                return
            try:
                blobs = item_fields(item, wanted)
            except ProviderError as exc:
                self._log("request", **base, decision="error", reason=str(exc))
                await self._send_error(state, "provider", str(exc))
                return
            self._log("request", **base, decision="allowed", credential_id=item.credential_id)
        finally:
            item.wipe()
        plaintext = messages.encode({"type": messages.CREDENTIAL, "lease": state.lease}, blobs)
        try:
            frame = state.session.encrypt(plaintext)
        finally:
            wipe_bytes(plaintext)
            for value in blobs.values():
                value.wipe()
        state.writer.write(framing.encode(frame))
        await state.writer.drain()

    def _decide(self, peer: Peer | None, query: Query, *, state: LeaseState | None = None,
                take: bool = True) -> tuple[str, str, str, float | None]:
        """(decision, wire code, reason, retry_after) before the provider is asked.

        The rate limit comes first, so denied requests count too: a peer probing for names it may
        not have is slowed down like one that drains the vault.
        """
        if self.audit_broken:
            return "error", "error", (f"the listener cannot write its audit log, so it refuses requests "
                                      f"until it can ({self.audit_broken})"), None
        if peer is None or peer.revoked or (state is not None and state.ended):
            why = "this lease was ended by the listener" if peer is not None and not peer.revoked else \
                "this peer was revoked on the listener"
            return "revoked", "revoked", why, None
        if take:
            bucket = self.buckets.get(peer.name)
            if bucket is None:
                bucket = self.buckets[peer.name] = policy.TokenBucket(*self.options.rate)
            wait = bucket.take()
            if wait > 0:
                count, period = self.options.rate
                return ("rate_limited", "rate_limited",
                        f"rate limit of {count} requests per {_seconds(period)} reached for peer {peer.name}; "
                        f"retry in {max(wait, 0.1):.1f}s", round(wait, 3))
        if not policy.allows(peer.scope, query):
            return ("denied", "denied", f"{query} is outside the scope of peer {peer.name} "
                    f"({' '.join(peer.scope) or 'nothing'}); the listener's owner can change it with "
                    f"`runwrap peers scope {peer.name} PATTERN...`", None)
        return "allowed", "", "", None

    async def _approve(self, peer: str, query: Query, fields: list[str], claim: dict[str, str] | None) -> bool:
        """Ask on the listener's terminal (approve always|first) before the provider is asked."""
        mode = self.options.approve
        if mode == "never":
            return True
        key = (peer, str(query))
        async with self.approvals.lock:
            if mode == "first":
                remembered = self.approvals.remembered.get(key)
                if remembered and remembered[1] > time.monotonic():
                    return remembered[0]
            prov = claim or {}
            question = (f"\nrunwrap: peer {peer} asks for {query} (fields: {', '.join(fields)})\n"
                        f"  it says it will run {prov.get('argv0') or '?'} with profile {prov.get('profile') or '-'} "
                        f"(pid {prov.get('pid') or '?'}, folder {prov.get('cwd') or '?'}) — its claim, not proof\n"
                        f"  allow{' for ' + _seconds(self.options.approve_ttl) if mode == 'first' else ''}? [y/N] ")
            timeout = self.options.approve_timeout
            ask: Callable[[str], bool | None] = self.ask or (lambda text: ask_terminal(text, timeout))
            answer = await asyncio.get_running_loop().run_in_executor(None, ask, question)
            if mode == "first" and answer is not None:
                self.approvals.remembered[key] = (answer, time.monotonic() + self.options.approve_ttl)
            return bool(answer)

    async def _send_error(self, state: LeaseState, code: str, message: str, *,
                          retry_after: float | None = None) -> None:
        header: dict[str, Any] = {"type": messages.ERROR, "code": code, "message": message}
        if retry_after is not None:
            header["retry_after"] = retry_after
        if state.writer.is_closing():
            return
        state.writer.write(framing.encode(state.session.encrypt(messages.encode(header))))
        await state.writer.drain()

    # ---- pairing ----

    async def _pair(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    deadline: float | None = None) -> None:
        """SPAKE2 -> Noise NNpsk0 -> IK bound to the NNpsk0 hash -> a new peer (docs/protocol.md).

        One attempt per code: the invite is taken out of the table before the first await after it is
        found, so it is burned whatever happens next, and two connections can never both use it.
        Every way a pairing can fail after the hello is read counts against the rate limit and is
        audited as `pair_failed`.
        """
        first = await framing.read_frame(reader, timeout=HANDSHAKE_TIMEOUT, deadline=deadline,
                                         max_len=framing.MAX_HANDSHAKE_FRAME)
        now = time.monotonic()
        self.pair_failures = [t for t in self.pair_failures if now - t < 60]
        if len(self.pair_failures) >= PAIR_FAILURES_PER_MINUTE:
            self._log("pair_failed", decision="rate_limited", reason="too many failed pairings; wait a minute")
            await self._reject(writer, "rate_limited", "too many failed pairings on this listener; "
                               "wait a minute and ask for a fresh invite")
            return
        try:
            hello = json.loads(first)
            nameplate, consumer_msg = hello["nameplate"], bytes.fromhex(hello["msg"])
            if not isinstance(nameplate, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            self.pair_failures.append(now)
            self._log("pair_failed", decision="denied", reason="malformed pairing hello")
            raise ProtocolError("malformed pairing hello") from None
        invite = self.invites.pop(nameplate, None)
        if invite is None or invite.expires_at <= time.time():
            self.pair_failures.append(now)
            self._log("pair_failed", decision="denied", reason="no such invite, or it expired")
            await self._reject(writer, "pairing_failed", "that pairing code is unknown, used or expired; "
                               "ask for a fresh `runwrap invite`")
            return
        stage = "the consumer's PAKE message is malformed; the invite is burned"
        try:
            pake = pairing.Pake(invite.code, listener=True)
            transcript = pairing.transcript(nameplate, consumer_msg, pake.message)
            psk = pake.finish(consumer_msg, transcript)
            writer.write(framing.encode(framing.ACCEPT + pake.message, framing.MAX_HANDSHAKE_FRAME))
            await writer.drain()
            stage = "the consumer left before proving the code; the invite is burned"
            handshake = noise_session.responder_pair(psk, transcript)
            message1 = await framing.read_frame(reader, timeout=HANDSHAKE_TIMEOUT, deadline=deadline,
                                                max_len=framing.MAX_HANDSHAKE_FRAME)
            try:
                handshake.read(message1)
            except ProtocolError:
                stage = "wrong pairing code; the invite is burned"
                await self._reject(writer, "pairing_failed", "wrong pairing code; ask for a fresh `runwrap invite`")
                raise
            stage = "the consumer did not prove its key; the invite is burned"
            # The listener's static key travels encrypted under the code-derived PSK (message 2) ...
            writer.write(framing.encode(framing.ACCEPT + handshake.write(self.public), framing.MAX_HANDSHAKE_FRAME))
            await writer.drain()
            # ... and an IK run whose prologue is this pairing's handshake hash proves both static
            # keys: only the two ends of this NNpsk0 run know that hash.
            confirm = noise_session.responder_confirm(self.private, handshake.handshake_hash)
            ik1 = await framing.read_frame(reader, timeout=HANDSHAKE_TIMEOUT, deadline=deadline,
                                           max_len=framing.MAX_HANDSHAKE_FRAME)
            if confirm.read(ik1):
                raise ProtocolError("the confirmation message carried a payload")
            consumer_key = confirm.remote_static or b""
            writer.write(framing.encode(framing.ACCEPT + confirm.write(), framing.MAX_HANDSHAKE_FRAME))
            await writer.drain()
            session = confirm.session()
            frame = await framing.read_frame(reader, timeout=HANDSHAKE_TIMEOUT, deadline=deadline,
                                             max_len=framing.MAX_HANDSHAKE_FRAME)
            header, _ = messages.decode(session.decrypt(frame))
            if header.get("type") != "pair" or len(consumer_key) != noise_session.KEY_LEN:
                raise ProtocolError("malformed pairing identity")
            proposed = str(header.get("name") or "consumer")
        except (ProtocolError, OSError) as exc:
            self.pair_failures.append(now)
            with contextlib.suppress(AuditError):
                self._log("pair_failed", decision="denied", reason=stage)
            raise ProtocolError(str(exc)) from None
        name = self._unique_name(invite.name or proposed, consumer_key)
        self._log("pair", peer=name, peer_fp=fingerprint(consumer_key), decision="allowed",
                  reason=f"scope {' '.join(invite.scope)}")
        existing = self.peers.by_key(consumer_key)
        if existing is not None and existing.name != name:
            del self.peers.by_name[existing.name]
        self.peers.add(name, consumer_key, invite.scope)
        getattr(self, "_handshaking", {}).pop(writer, None)
        reply = messages.encode({"type": "paired", "name": name, "scope": invite.scope})
        writer.write(framing.encode(session.encrypt(reply)))
        await writer.drain()
        self.out(f"runwrap: paired with {name} ({fingerprint(consumer_key)}), scope {' '.join(invite.scope)}")

    def _unique_name(self, wanted: str, key: bytes) -> str:
        base = "".join(c if c.isalnum() or c in "-_." else "-" for c in wanted)[:64] or "consumer"
        name, n = base, 1
        while name in self.peers.by_name and self.peers.by_name[name].public != key.hex():
            n += 1
            name = f"{base}-{n}"
        return name

    # ---- control ----

    async def _control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        frame = await framing.read_frame(reader, timeout=HANDSHAKE_TIMEOUT)
        try:
            request = json.loads(frame)
            op = request["op"]
        except (ValueError, KeyError, TypeError):
            raise ProtocolError("malformed control request") from None
        try:
            reply = self._control_op(op, request)
        except (RunwrapError, ValueError) as exc:
            reply = {"ok": False, "error": str(exc)}
        except (KeyError, TypeError) as exc:
            reply = {"ok": False, "error": f"malformed control request ({type(exc).__name__}: {exc})"}
        writer.write(framing.encode(json.dumps(reply).encode()))
        await writer.drain()

    def _control_op(self, op: str, request: dict[str, Any]) -> dict[str, Any]:
        if op == "invite":
            ttl = float(request.get("ttl") or DEFAULT_INVITE_TTL)
            invite = self.invite(request.get("name"), list(request.get("scope") or []), ttl)
            return {"ok": True, "code": invite.code, "address": self.address, "expires_at": invite.expires_rfc3339}
        if op == "revoke":
            return {"ok": True, "ended": self.revoke(str(request["name"]))}
        if op == "scope":
            peer = self._peer(str(request["name"]))
            scope = [policy.check_pattern(str(p)) for p in request.get("scope") or []]
            if not scope:
                raise ValueError("name at least one scope pattern (to refuse everything, revoke the peer)")
            old, peer.scope = peer.scope, scope
            self.peers.save()  # the next request, on any session of this peer, sees the new scope
            with contextlib.suppress(AuditError):  # requests are refused anyway while the log is broken
                self._log("scope", peer=peer.name, peer_fp=_fp(peer), decision="allowed",
                          reason=f"scope {' '.join(old)} -> {' '.join(scope)}")
            return {"ok": True, "scope": peer.scope}
        if op == "status":
            return {"ok": True, "address": self.address, "provider": self.options.provider_name,
                    "leases": {name: len(v) for name, v in self.leases.items() if v}}
        raise ValueError(f"unknown control operation {op!r}")

    def _peer(self, name: str) -> Peer:
        peer = self.peers.by_name.get(name)
        if peer is None:
            known = ", ".join(sorted(self.peers.by_name)) or "none"
            raise RunwrapError(f"no peer named {name!r} (peers: {known})")
        return peer

    def revoke(self, name: str) -> int:
        """Refuse the peer's key from now on and end every lease it holds; returns how many ended."""
        peer = self._peer(name)
        peer.revoked = True
        self.peers.save()
        states = list(self.leases.get(name, {}).values())
        # A broken audit log must not stop a revocation; the events are written if they can be.
        with contextlib.suppress(AuditError):
            self._log("revoke", peer=name, peer_fp=_fp(peer), decision="revoked",
                      reason=f"peer revoked; ending {len(states)} open session(s)")
        for state in states:
            self._end_lease(state, "peer revoked")
        return len(states)


def item_fields(item: Item, wanted: list[str]) -> dict[str, Secret]:
    """The requested fields of an item as Secrets; the TOTP seed becomes its current code here."""
    out: dict[str, Secret] = {}
    for name in wanted:
        if name == "password":
            out[name] = Secret(item.password.buffer)
        elif name == "notes":
            if item.notes is not None:
                out[name] = Secret(item.notes.buffer)
        elif name == "totp":
            if item.totp_secret is not None and item.totp_secret:
                from runwrap.totp import totp  # only items with a seed pay for this import

                out[name] = Secret(totp(item.totp_secret))
        else:
            value = getattr(item, name)
            if value:
                out[name] = Secret(str(value))
    return out


def ask_terminal(question: str, timeout: float = 120.0) -> bool | None:
    """Ask on the listener's controlling terminal: True, False, or None (no answer in `timeout`).

    No terminal means no. Input typed before the question is discarded, so a stray `y` typed
    earlier cannot approve a request nobody has read yet.
    """
    import select
    import termios

    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        with contextlib.suppress(termios.error):
            termios.tcflush(fd, termios.TCIFLUSH)
        os.write(fd, question.encode())
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                os.write(fd, f"\nrunwrap: no answer in {_seconds(timeout)}: denied\n".encode())
                return None
            chunk = os.read(fd, 256)
            if not chunk:
                return False
            line += chunk
    except OSError:
        return False
    finally:
        os.close(fd)
    return line.decode(errors="replace").strip().lower() in ("y", "yes")


def _claim(provenance: Any) -> dict[str, str] | None:
    """The consumer's claim (argv[0], pid, profile, folder name), cut short and made printable.

    It is shown on the listener's terminal, so control characters (escape sequences that could
    redraw the question) are replaced.
    """
    if not isinstance(provenance, dict):
        return None
    out = {}
    for key in ("argv0", "pid", "profile", "cwd"):
        if key in provenance:
            text = str(provenance[key])[:200]
            out[key] = "".join(c if c.isprintable() else "?" for c in text)
    return out or None


def _seconds(value: float) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if value >= size and value % size == 0:
            return f"{value / size:g}{unit}"
    return f"{value:g}s"


def _fp(peer: Peer | None) -> str | None:
    return fingerprint(peer.public_bytes) if peer else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def run(listener: Listener) -> None:
    asyncio.run(listener.serve())
