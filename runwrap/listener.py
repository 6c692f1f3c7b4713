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


@dataclass
class Options:
    provider_name: str = "example"
    approve: str = "never"
    rate: tuple[int, float] = (120, 60.0)
    max_lease: float | None = None
    tcp: tuple[str, int] | None = None
    socket_path: Path | None = None
    audit_path: Path | None = None
    approve_ttl: float = 3600.0


@dataclass
class _Pending:
    """Approvals asked on the listener's terminal, one at a time."""

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
        self._stopped = asyncio.Event()
        private_dir(self.socket_path.parent)
        with contextlib.suppress(FileNotFoundError):
            if self._socket_in_use():
                raise RunwrapError(f"a listener is already running on {self.socket_path}")
            self.socket_path.unlink()
        # The socket file is created by bind() with the process umask: 0177 leaves it 0600 from
        # the first instant, and the loop is single-threaded here, so nothing else sees the umask.
        old = os.umask(0o177)
        try:
            unix = await asyncio.start_unix_server(self._accept_unix, path=str(self.socket_path),
                                                   limit=framing.MAX_FRAME + 16)
        finally:
            os.umask(old)
        self._servers.append(unix)
        if self.options.tcp:
            host, port = self.options.tcp
            tcp = await asyncio.start_server(self._accept_tcp, host=host, port=port,
                                             limit=framing.MAX_FRAME + 16)
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
        try:
            probe.connect(str(self.socket_path))
            return True
        except OSError:
            return False
        finally:
            probe.close()

    async def _sync_audit(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                self.audit.sync()
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

    async def _accept_unix(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        try:
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            _pid, uid, _gid = struct.unpack("3i", creds)
        except OSError:
            uid = -1
        if uid != os.getuid():
            with contextlib.suppress(AuditError):
                self._log("handshake_failed", decision="denied",
                          reason=f"a process of uid {uid} is not allowed on this socket")
            writer.close()
            return
        await self._accept(reader, writer, local=True)

    async def _accept_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._accept(reader, writer, local=False)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, local: bool) -> None:
        if self.connections >= MAX_CONNECTIONS:
            writer.close()
            return
        self.connections += 1
        try:
            mode = await framing.read_preface(reader, HANDSHAKE_TIMEOUT)
            if mode == framing.MODE_SESSION:
                await self._session(reader, writer)
            elif mode == framing.MODE_PAIR:
                await self._pair(reader, writer)
            elif local:
                await self._control(reader, writer)
            else:
                raise ProtocolError("control connections are only accepted on the local socket")
        except (ProtocolError, AuditError, ConnectionError, asyncio.IncompleteReadError):
            pass  # one connection's failure is that connection's; it was audited where it mattered
        finally:
            self.connections -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    # ---- sessions ----

    async def _reject(self, writer: asyncio.StreamWriter, code: str, message: str) -> None:
        body = json.dumps({"code": code, "message": message}).encode()
        writer.write(framing.encode(framing.REJECT + body))
        with contextlib.suppress(ConnectionError):
            await writer.drain()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = await framing.read_frame(reader, timeout=HANDSHAKE_TIMEOUT, max_len=framing.MAX_HANDSHAKE_FRAME)
        handshake = noise_session.responder_ik(self.private)
        try:
            payload = handshake.read(first)
        except ProtocolError:
            self._log("handshake_failed", decision="denied",
                      reason="message 1 did not verify (wrong listener key or not runwrap)")
            await self._reject(writer, "cannot_decrypt", "this listener's key is not the one you pinned")
            return
        remote = handshake.remote_static or b""
        peer = self.peers.by_key(remote)
        if payload or peer is None or peer.revoked:
            why = ("message 1 carried a payload" if payload else
                   "peer was revoked" if peer is not None else "unknown key")
            self._log("handshake_failed", peer=peer.name if peer else None, peer_fp=fingerprint(remote),
                      decision="revoked" if peer is not None and peer.revoked else "denied", reason=why)
            await self._reject(writer, "unknown_peer", "this consumer is not a peer of the listener "
                               "(never paired, removed or revoked); pair again with a fresh invite")
            return
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
                self._log("lease_end", peer=state.peer, peer_fp=_fp(peer), lease=state.lease,
                          exit=_int(header.get("exit")), duration_ms=_int(header.get("duration_ms")))
                return
            else:
                raise ProtocolError(f"unexpected message {kind!r}")

    def _hold(self, state: LeaseState, header: dict[str, Any]) -> None:
        state.held = True
        state.started = time.monotonic()
        if self.options.max_lease:
            loop = asyncio.get_running_loop()
            state.timer = loop.call_later(self.options.max_lease, self._end_lease, state,
                                          "maximum lease length reached")

    def _end_lease(self, state: LeaseState, reason: str) -> None:
        """End a lease from the listener's side: the consumer stops its child at once."""
        if state.ended:
            return
        state.ended = True
        with contextlib.suppress(AuditError):
            self._log("revoke", peer=state.peer, peer_fp=_fp(self.peers.by_name.get(state.peer)),
                      lease=state.lease, decision="revoked", reason=reason)
        with contextlib.suppress(Exception):
            state.writer.write(framing.encode(state.session.encrypt(
                messages.encode({"type": messages.REVOKE, "reason": reason}))))
        state.writer.close()

    async def _request(self, state: LeaseState, header: dict[str, Any]) -> None:
        peer = self.peers.by_name.get(state.peer)
        base: dict[str, Any] = {"peer": state.peer, "peer_fp": _fp(peer), "lease": state.lease}
        provenance = header.get("provenance")
        if isinstance(provenance, dict):
            base["provenance"] = {k: str(v)[:200] for k, v in provenance.items()
                                  if k in ("argv0", "pid", "profile", "cwd")}
        try:
            query = Query.from_wire(header.get("query"))
        except ValueError as exc:
            self._log("request", **base, decision="error", reason=str(exc))
            await self._send_error(state, "error", f"bad request: {exc}")
            return
        wanted = header.get("fields") or list(FIELDS)
        if not isinstance(wanted, list) or not all(f in FIELDS for f in wanted):
            self._log("request", **base, query=query.to_wire(), decision="error", reason="unknown field")
            await self._send_error(state, "error", f"bad request: fields must be among {', '.join(FIELDS)}")
            return
        base.update(query=query.to_wire(), fields=wanted)
        decision, code, reason, retry = self._decide(peer, query)
        if decision == "allowed" and not await self._approve(state.peer, query, wanted, base.get("provenance")):
            decision, code, reason = "denied", "denied", "not approved on the listener"
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
            blobs = item_fields(item, wanted)
        except ProviderError as exc:
            self._log("request", **base, decision="error", reason=str(exc))
            await self._send_error(state, "provider", str(exc))
            return
        self._log("request", **base, decision="allowed", credential_id=item.credential_id)
        plaintext = messages.encode({"type": messages.CREDENTIAL, "lease": state.lease}, blobs)
        try:
            frame = state.session.encrypt(plaintext)
        finally:
            wipe_bytes(plaintext)
            for value in blobs.values():
                value.wipe()
        state.writer.write(framing.encode(frame))
        await state.writer.drain()

    def _decide(self, peer: Peer | None, query: Query) -> tuple[str, str, str, float | None]:
        if self.audit_broken:
            return "error", "error", f"the listener's audit log cannot be written ({self.audit_broken})", None
        if peer is None or peer.revoked:
            return "revoked", "revoked", "this peer was revoked", None
        if not policy.allows(peer.scope, query):
            return "denied", "denied", f"{query} is outside peer {peer.name}'s scope", None
        bucket = self.buckets.get(peer.name)
        if bucket is None:
            bucket = self.buckets[peer.name] = policy.TokenBucket(*self.options.rate)
        wait = bucket.take()
        if wait > 0:
            return ("rate_limited", "rate_limited",
                    f"rate limit reached for peer {peer.name}; retry in {wait:.1f}s", round(wait, 3))
        return "allowed", "", "", None

    async def _approve(self, peer: str, query: Query, fields: list[str], provenance: Any) -> bool:
        mode = self.options.approve
        if mode == "never":
            return True
        key = (peer, str(query))
        async with self.approvals.lock:
            if mode == "first":
                remembered = self.approvals.remembered.get(key)
                if remembered and remembered[1] > time.monotonic():
                    return remembered[0]
            prov = provenance or {}
            question = (f"runwrap: peer {peer} asks for {query} ({', '.join(fields)}) to run "
                        f"{prov.get('argv0', '?')} (profile {prov.get('profile', '-')}, pid {prov.get('pid', '?')}, "
                        f"in {prov.get('cwd', '?')}). Allow? [y/N] ")
            ask = self.ask or ask_terminal
            answer = await asyncio.get_running_loop().run_in_executor(None, ask, question)
            if mode == "first":
                self.approvals.remembered[key] = (answer, time.monotonic() + self.options.approve_ttl)
            return answer

    async def _send_error(self, state: LeaseState, code: str, message: str, *,
                          retry_after: float | None = None) -> None:
        header: dict[str, Any] = {"type": messages.ERROR, "code": code, "message": message}
        if retry_after is not None:
            header["retry_after"] = retry_after
        state.writer.write(framing.encode(state.session.encrypt(messages.encode(header))))
        await state.writer.drain()

    # ---- pairing ----

    async def _pair(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = await framing.read_frame(reader, timeout=HANDSHAKE_TIMEOUT, max_len=framing.MAX_HANDSHAKE_FRAME)
        try:
            hello = json.loads(first)
            nameplate, consumer_msg = str(hello["nameplate"]), bytes.fromhex(hello["msg"])
        except (ValueError, KeyError, TypeError):
            raise ProtocolError("malformed pairing hello") from None
        now = time.monotonic()
        self.pair_failures = [t for t in self.pair_failures if now - t < 60]
        invite = self.invites.get(nameplate)
        if len(self.pair_failures) >= PAIR_FAILURES_PER_MINUTE:
            self._log("pair_failed", decision="rate_limited", reason="too many failed pairings; wait a minute")
            await self._reject(writer, "rate_limited", "too many failed pairings on this listener; "
                               "wait a minute and ask for a fresh invite")
            return
        if invite is None or invite.expires_at <= time.time():
            self.pair_failures.append(now)
            self.invites.pop(nameplate, None)
            self._log("pair_failed", decision="denied", reason="no such invite, or it expired")
            await self._reject(writer, "pairing_failed", "that pairing code is unknown, used or expired; "
                               "ask for a fresh `runwrap invite`")
            return
        # One attempt per code: the invite is burned now, whatever happens next.
        del self.invites[nameplate]
        pake = pairing.Pake(invite.code, listener=True)
        transcript = pairing.transcript(nameplate, consumer_msg, pake.message)
        try:
            psk = pake.finish(consumer_msg, transcript)
        except ProtocolError:
            self.pair_failures.append(now)
            self._log("pair_failed", decision="denied", reason="malformed pairing message")
            raise
        writer.write(framing.encode(framing.ACCEPT + pake.message, framing.MAX_HANDSHAKE_FRAME))
        await writer.drain()
        handshake = noise_session.responder_pair(psk, transcript)
        message1 = await framing.read_frame(reader, timeout=HANDSHAKE_TIMEOUT, max_len=framing.MAX_HANDSHAKE_FRAME)
        try:
            handshake.read(message1)
        except ProtocolError:
            self.pair_failures.append(now)
            self._log("pair_failed", decision="denied", reason="wrong pairing code; the invite is burned")
            await self._reject(writer, "pairing_failed", "wrong pairing code; ask for a fresh `runwrap invite`")
            return
        writer.write(framing.encode(framing.ACCEPT + handshake.write(), framing.MAX_HANDSHAKE_FRAME))
        await writer.drain()
        session = handshake.session()
        frame = await framing.read_frame(reader, timeout=HANDSHAKE_TIMEOUT)
        header, _ = messages.decode(session.decrypt(frame))
        try:
            consumer_key = bytes.fromhex(header["static"])
            proposed = str(header.get("name") or "consumer")
        except (KeyError, ValueError, TypeError):
            raise ProtocolError("malformed pairing identity") from None
        if header.get("type") != "pair" or len(consumer_key) != 32:
            raise ProtocolError("malformed pairing identity")
        name = self._unique_name(invite.name or proposed, consumer_key)
        self._log("pair", peer=name, peer_fp=fingerprint(consumer_key), decision="allowed",
                  reason=f"scope {' '.join(invite.scope)}")
        existing = self.peers.by_key(consumer_key)
        if existing is not None and existing.name != name:
            del self.peers.by_name[existing.name]
        self.peers.add(name, consumer_key, invite.scope)
        reply = messages.encode({"type": "paired", "name": name, "static": self.public.hex()})
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
            peer.scope = [policy.check_pattern(p) for p in request.get("scope") or []]
            self.peers.save()
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
        self._log("revoke", peer=name, peer_fp=_fp(peer), decision="revoked", reason="peer revoked")
        states = list(self.leases.get(name, {}).values())
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


def ask_terminal(question: str) -> bool:
    """Ask on the listener's controlling terminal; no terminal means no."""
    try:
        with open("/dev/tty", "r+b", buffering=0) as tty:
            tty.write(question.encode())
            answer = tty.readline().decode(errors="replace").strip().lower()
    except OSError:
        return False
    return answer in ("y", "yes")


def _fp(peer: Peer | None) -> str | None:
    return fingerprint(peer.public_bytes) if peer else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def run(listener: Listener) -> None:
    asyncio.run(listener.serve())
