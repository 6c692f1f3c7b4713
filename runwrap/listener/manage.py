"""The listener's owner at work: start a listener, and invite, revoke, rescope or ask a running one.

Requests go to the running listener's control socket (plain JSON, one request a connection; the
listener's side is runwrap.listener.control), so they act at once: a revocation has ended the
peer's running children by the time it returns. Two changes also work with no listener running, on
the peers file a listener reads when it starts: revoking a peer and replacing its scope. Nothing
else falls back: a pairing code lives only in the listener's memory, and a status of a listener
that is not there would be a guess. The CLI (`runwrap listen`, `invite`, `peers revoke|scope`,
`doctor`) and the tests call these functions.

Which listener: the `socket_path` given (`--socket`), else the one the running listener recorded
(runwrap.listener.locator: a listener started with `--socket` is found too), else the default. A
change that falls back to the files while a listener runs (the one named, or the recorded one) is
made in the files and then reported as an error: that listener keeps serving the old state until it
restarts, and its owner must know.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runwrap.errors import ConnectionFailed, HandshakeFailed, ProtocolError, RunwrapError, UsageError
from runwrap.listener import locator, policy
from runwrap.listener.audit import AuditLog
from runwrap.listener.peers import Peer, Peers
from runwrap.paths import Layout
from runwrap.wire import framing
from runwrap.wire.identity import fingerprint

if TYPE_CHECKING:  # the server (asyncio and all) is loaded only by `serve`
    from runwrap.listener.server import Options

CONNECT_TIMEOUT = 5.0
ANSWER_TIMEOUT = 10.0


@dataclass(frozen=True)
class Invitation:
    """A one-time pairing code, where to use it, and until when (RFC 3339, UTC)."""

    code: str
    address: str
    expires_at: str


@dataclass(frozen=True)
class Change:
    """What a revocation or a scope change did. `live`: a running listener made it, so it held at
    once (and `ended` running leases were ended); otherwise only the peers file was changed."""

    peer: str
    scope: list[str]
    revoked: bool
    live: bool
    ended: int = 0


@dataclass(frozen=True)
class Status:
    address: str
    provider: str
    leases: dict[str, int]  # running leases per peer


def control(lay: Layout, request: Mapping[str, Any], *, socket_path: Path | None = None) -> dict[str, Any]:
    """One request to the listener on its local socket, and its answer.

    ConnectionFailed if no listener answers there; RunwrapError with the listener's words if it
    refused the request.
    """
    path = control_socket(lay, socket_path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(CONNECT_TIMEOUT)
    try:
        try:
            sock.connect(os.fspath(path))
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            raise ConnectionFailed(f"cannot reach the listener at unix:{path}: {why}; "
                                   "is `runwrap listen` running?") from None
        # Connected: a listener is there. Whatever fails from now on is not "no listener", so
        # it must not let a revocation fall back to the files behind a running listener's back.
        try:
            sock.sendall(framing.preface(framing.MODE_CONTROL))
            framing.send_frame(sock, json.dumps(dict(request)).encode())
            reply = json.loads(framing.recv_frame(sock, deadline=time.monotonic() + ANSWER_TIMEOUT))
        except (ConnectionFailed, HandshakeFailed, OSError) as exc:
            raise RunwrapError(f"the listener at unix:{path} did not answer: {exc}; try again") from None
        except ValueError:
            raise ProtocolError("the listener's control answer is malformed") from None
    finally:
        sock.close()
    if not isinstance(reply, dict):
        raise ProtocolError("the listener's control answer is malformed")
    if not reply.get("ok"):
        raise RunwrapError(str(reply.get("error") or "the listener refused"))
    return reply


def control_socket(lay: Layout, socket_path: Path | None = None) -> Path:
    """The control socket to ask: the one named, else the running listener's recorded one, else the default."""
    if socket_path is not None:
        return socket_path
    found = locator.running(lay)
    return found.control if found is not None else lay.socket


def audit_log(lay: Layout, socket_path: Path | None = None) -> Path:
    """The audit log of the listener at `socket_path` (asked), else of the recorded one, else the default."""
    if socket_path is not None:
        return Path(str(control(lay, {"op": "status"}, socket_path=socket_path).get("audit_log") or lay.audit_log))
    found = locator.running(lay)
    return found.audit_log if found is not None else lay.audit_log


def invite(lay: Layout, name: str | None, scope: Sequence[str], ttl: float, *,
           socket_path: Path | None = None) -> Invitation:
    """A one-time pairing code from the running listener for a peer `name` with `scope`.

    ValueError if a scope pattern is malformed (checked here, before the listener is asked).
    """
    patterns = [policy.check_pattern(p) for p in scope]
    reply = control(lay, {"op": "invite", "name": name, "scope": patterns, "ttl": ttl}, socket_path=socket_path)
    return Invitation(code=str(reply["code"]), address=str(reply["address"]), expires_at=str(reply["expires_at"]))


def status(lay: Layout, *, socket_path: Path | None = None) -> Status:
    """What the running listener says about itself; ConnectionFailed if none runs there."""
    reply = control(lay, {"op": "status"}, socket_path=socket_path)
    leases = reply.get("leases") or {}
    return Status(address=str(reply.get("address")), provider=str(reply.get("provider")),
                  leases={str(k): int(v) for k, v in leases.items()})


def revoke(lay: Layout, name: str, *, socket_path: Path | None = None, audit_path: Path | None = None) -> Change:
    """Refuse peer `name`'s key from now on, and end its running children if a listener runs.

    RunwrapError, after the peers file is changed, if a listener runs that could not be reached."""
    target = control_socket(lay, socket_path)
    try:
        reply = control(lay, {"op": "revoke", "name": name}, socket_path=target)
    except ConnectionFailed:
        pass
    else:
        return Change(peer=name, scope=[], revoked=True, live=True, ended=int(reply.get("ended") or 0))

    def revoked(peer: Peer) -> str:
        peer.revoked = True
        return "peer revoked (listener not running)"

    peer = _offline(lay, name, revoked, "revoke", "revoked", _audit_path(lay, audit_path))
    _say_if_running(lay, socket_path, target, f"revoked {name} in the peers file only",
                    "its running children keep their credentials until that listener stops")
    return Change(peer=name, scope=list(peer.scope), revoked=True, live=False)


def set_scope(lay: Layout, name: str, patterns: Sequence[str], *, socket_path: Path | None = None,
              audit_path: Path | None = None) -> Change:
    """Replace peer `name`'s scope; a running listener applies it to the next request, even on an
    open session. ValueError if a pattern is malformed or there is none; RunwrapError, after the
    peers file is changed, if a listener runs that could not be reached."""
    scope = [policy.check_pattern(p) for p in patterns]
    if not scope:
        raise ValueError("name at least one scope pattern (to refuse everything, revoke the peer)")
    target = control_socket(lay, socket_path)
    try:
        reply = control(lay, {"op": "scope", "name": name, "scope": scope}, socket_path=target)
    except ConnectionFailed:
        pass
    else:
        return Change(peer=name, scope=[str(p) for p in reply["scope"]], revoked=False, live=True)

    def rescoped(peer: Peer) -> str:
        old, peer.scope = peer.scope, scope
        return f"scope {' '.join(old)} -> {' '.join(scope)} (listener not running)"

    peer = _offline(lay, name, rescoped, "scope", "allowed", _audit_path(lay, audit_path))
    _say_if_running(lay, socket_path, target, f"changed the scope of {name} in the peers file only",
                    "the running listener serves the old scope until it stops")
    return Change(peer=name, scope=list(peer.scope), revoked=peer.revoked, live=False)


def _audit_path(lay: Layout, given: Path | None) -> Path | None:
    if given is not None:
        return given
    found = locator.read(lay)  # the last listener's log, even if it is gone: the change belongs there
    return found.audit_log if found is not None else None


def _say_if_running(lay: Layout, socket_path: Path | None, target: Path, done: str, consequence: str) -> None:
    """After a change fell back to the files: an error if a listener runs (or was named) that was not reached."""
    found = locator.running(lay)
    if socket_path is None and found is None:
        return  # no listener runs: the files are where the change belongs
    who = f"the listener (pid {found.pid})" if found is not None and socket_path is None else "the listener"
    raise RunwrapError(f"{done}: {who} at unix:{target} could not be reached; {consequence}; "
                       "the change holds when a listener next starts")


def _offline(lay: Layout, name: str, change: Callable[[Peer], str], event: str, decision: str,
             audit_path: Path | None) -> Peer:
    """Change a peer in the peers file (a listener reads it when it starts) and audit the change."""
    peers = Peers(lay.peers)
    peer = peers.by_name.get(name)
    if peer is None:
        known = ", ".join(sorted(peers.by_name)) or "none"
        raise RunwrapError(f"no peer named {name!r} (peers: {known})")
    reason = change(peer)
    peers.save()  # first: a revocation must hold even if the log below cannot be written
    log = AuditLog(audit_path or lay.audit_log)
    try:
        log.write(event, peer=peer.name, peer_fp=fingerprint(peer.public_bytes), decision=decision, reason=reason)
    finally:
        log.close()
    return peer


def serve(lay: Layout, provider: str, provider_options: Mapping[str, str], options: Options, *,
          cache_ttl: float | None = None, prompt: Callable[[str], str] | None = None) -> None:
    """Run a listener until it is stopped: the provider loaded (and cached for `cache_ttl` seconds),
    then `runwrap.listener.server`. `prompt` asks the provider's questions (a master password) on a
    terminal."""
    from runwrap.listener import server
    from runwrap.providers import CachingProvider, load

    if options.approve != "never":
        _need_terminal(options.approve)
    backend = load(provider, dict(provider_options), prompt)
    if cache_ttl:
        backend = CachingProvider(backend, cache_ttl)
    server.run(server.Listener(lay, backend, options))


def _need_terminal(mode: str) -> None:
    """--approve asks on /dev/tty; without one every request would be refused, so say so at start."""
    try:
        os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))
    except OSError:
        raise UsageError(f"--approve {mode} asks on the listener's terminal, and this listener has none; "
                         "run it in a terminal (or tmux), or use --approve never") from None
