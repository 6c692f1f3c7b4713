"""Pairing: single use, expiring, burned by one wrong attempt, rate-limited, audited, and no offline
guessing of the code from a recorded pairing or from one run of a rogue listener."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from spake2 import SPAKE2_B
from spake2.spake2 import finalize_SPAKE2

from runwrap.consumer.connections import Connections
from runwrap.consumer.pairing import pair
from runwrap.errors import ConnectionFailed, PairingFailed, ProtocolError
from runwrap.listener.peers import Peers
from runwrap.paths import layout
from runwrap.testing.listener import RunningListener
from runwrap.wire import framing, noise_session, pairing
from runwrap.wire.identity import load_or_create_identity
from tests.wire.wire_kit import RecordingProxy, fetch, frame, read_frame, split_frames, unix

DICTIONARY_SIZE = 64


@pytest.fixture
def fresh() -> Iterator[RunningListener]:
    """A listener of its own: failed pairings count against a per-listener rate limit."""
    with RunningListener() as running:
        yield running


def lay(home: Path):  # type: ignore[no-untyped-def]
    return layout({"RUNWRAP_HOME": str(home)})


def dictionary(code: str, size: int = DICTIONARY_SIZE) -> list[str]:
    """`size` codes with the same nameplate, the right one somewhere in the middle."""
    nameplate = code[:4]
    words = {code}
    while len(words) < size:
        words.add(pairing.new_code()[1].replace(pairing.new_code()[0], nameplate, 1))
    ordered = sorted(words)
    assert code in ordered
    return ordered


def pair_failed(events: list[dict]) -> list[dict]:
    return [e for e in events if e["event"] == "pair_failed"]


# ---- what an eavesdropper and a rogue listener can compute ----

def transcript_guess_opens_message1(frames_up: list[bytes], frames_down: list[bytes], guess: str) -> bool:
    """Everything a passive attacker can do with a guess: run SPAKE2 as the listener on it against the
    recorded consumer message, derive the PSK as runwrap does, and try to open NNpsk0 message 1."""
    hello = json.loads(frames_up[0])
    consumer_msg = bytes.fromhex(hello["msg"])
    listener_msg = frames_down[0][1:]
    transcript = pairing.transcript(hello["nameplate"], consumer_msg, listener_msg)
    side = SPAKE2_B(guess.encode(), idA=pairing.ID_CONSUMER, idB=pairing.ID_LISTENER)
    side.start()
    psk = pairing.derive_psk(side.finish(consumer_msg), transcript)
    try:
        noise_session.responder_pair(psk, transcript).read(frames_up[1])
        return True
    except ProtocolError:
        return False


def test_a_recorded_pairing_gives_no_way_to_test_guesses(fresh: RunningListener, tmp_path: Path) -> None:
    invite = fresh.invite(name="recorded")
    proxy = RecordingProxy(tmp_path / "proxy.sock", fresh.socket)
    conn = pair(invite["code"], f"unix:{proxy.path}", "recorded", lay(fresh.home))
    proxy.close()
    conns = Connections(fresh.home / "connections.json")
    conns.by_name["recorded"].address = f"unix:{fresh.socket}"  # past the proxy, which is gone
    conns.save()
    assert fetch(fresh.home) == "alligator5", "the recorded pairing did not produce a working pairing"
    up = split_frames(bytes(proxy.up)[framing.PREFACE_LEN :])
    down = split_frames(bytes(proxy.down))
    assert len(up) == 4 and len(down) == 4  # hello, NN 1, IK 1, pair | B, NN 2, IK 2, paired
    assert conn.public_bytes.hex() not in (bytes(proxy.up) + bytes(proxy.down)).hex(), \
        "the listener's static key crossed the wire in the clear"
    words = dictionary(invite["code"])
    opened = [w for w in words if transcript_guess_opens_message1(up, down, w)]
    # The right code is in the dictionary and fares exactly like every wrong one.
    assert opened == []


def test_the_same_check_finds_the_code_when_the_listener_secret_is_known() -> None:
    """The control for the test above: the check is not blind. Whoever holds the listener's SPAKE2
    scalar (here: the test, which ran that side) picks the right code out of the dictionary."""
    code = pairing.new_code()[1]
    seed = os.urandom(64)
    consumer = pairing.Pake(code, listener=False)
    listener = SPAKE2_B(code.encode(), idA=pairing.ID_CONSUMER, idB=pairing.ID_LISTENER,
                        entropy_f=lambda n: seed[:n])
    listener_msg = listener.start()
    transcript = pairing.transcript(code[:4], consumer.message, listener_msg)
    message1 = noise_session.initiator_pair(consumer.finish(listener_msg, transcript), transcript).write()
    found = [w for w in dictionary(code) if _opens(w, seed, consumer.message, listener_msg, message1, code[:4])]
    assert found == [code]


def _opens(guess: str, seed: bytes, consumer_msg: bytes, sent_msg: bytes, message1: bytes, nameplate: str) -> bool:
    """What a rogue listener that knows its own scalar (from `seed`) can test for one guess, both as
    the library would compute it and with the key hash taken over the message it really sent."""
    transcript = pairing.transcript(nameplate, consumer_msg, sent_msg)
    keys = []
    side = SPAKE2_B(guess.encode(), idA=pairing.ID_CONSUMER, idB=pairing.ID_LISTENER, entropy_f=lambda n: seed[:n])
    side.start()
    group = side.params.group
    k_elem = group.bytes_to_element(consumer_msg[1:]).add(
        side.my_unblinding().scalarmult(-side.pw_scalar)).scalarmult(side.xy_scalar)
    keys.append(finalize_SPAKE2(pairing.ID_CONSUMER, pairing.ID_LISTENER, consumer_msg[1:], sent_msg[1:],
                                k_elem.to_bytes(), guess.encode()))
    keys.append(side.finish(consumer_msg))
    for key in keys:
        try:
            noise_session.responder_pair(pairing.derive_psk(key, transcript), transcript).read(message1)
            return True
        except ProtocolError:
            pass
    return False


class RogueListener:
    """Plays the listener for one pairing with a guessed code, records what the consumer sends."""

    def __init__(self, path: Path, guess: str) -> None:
        self.guess, self.seed = guess, os.urandom(64)
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(1)
        self.record: dict[str, bytes] = {}
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        conn, _ = self.server.accept()
        with conn:
            conn.settimeout(10)
            assert conn.recv(framing.PREFACE_LEN, socket.MSG_WAITALL) == framing.preface(framing.MODE_PAIR)
            hello = json.loads(read_frame(conn))
            side = SPAKE2_B(self.guess.encode(), idA=pairing.ID_CONSUMER, idB=pairing.ID_LISTENER,
                            entropy_f=lambda n: self.seed[:n])
            sent = side.start()
            conn.sendall(frame(framing.ACCEPT + sent))
            self.record = {"nameplate": hello["nameplate"].encode(), "consumer": bytes.fromhex(hello["msg"]),
                           "sent": sent, "message1": read_frame(conn)}
        self.server.close()


@pytest.mark.parametrize("guess_is_right", [False, True], ids=["wrong-guess", "right-guess"])
def test_a_rogue_listener_learns_only_whether_its_one_guess_was_right(tmp_path: Path, guess_is_right: bool) -> None:
    code = pairing.new_code()[1]
    words = dictionary(code)
    guess = code if guess_is_right else next(w for w in words if w != code)
    rogue = RogueListener(tmp_path / "rogue.sock", guess)
    home = tmp_path / "consumer"
    with pytest.raises((ConnectionFailed, PairingFailed)):
        pair(code, f"unix:{rogue.server.getsockname()}", "victim", lay(home))
    rogue.thread.join(10)
    assert not (home / "connections.json").exists(), "the consumer pinned a key of a listener that did not finish"
    r = rogue.record
    nameplate = r["nameplate"].decode()
    found = [w for w in words if _opens(w, rogue.seed, r["consumer"], r["sent"], r["message1"], nameplate)]
    # With everything the run gave it, the rogue can test exactly one word: the guess it played.
    assert found == ([code] if guess_is_right else [])


def test_a_listener_that_cannot_prove_its_key_is_not_pinned(tmp_path: Path) -> None:
    """A rogue that knows the code but sends someone else's static key cannot answer the IK
    confirmation, so the consumer pins nothing."""
    code = pairing.new_code()[1]
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(tmp_path / "rogue.sock"))
    server.listen(1)
    someone_else = noise_session.generate_keypair()[1]

    def rogue() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(framing.PREFACE_LEN, socket.MSG_WAITALL)
            hello = json.loads(read_frame(conn))
            pake = pairing.Pake(code, listener=True)
            transcript = pairing.transcript(hello["nameplate"], bytes.fromhex(hello["msg"]), pake.message)
            handshake = noise_session.responder_pair(pake.finish(bytes.fromhex(hello["msg"]), transcript), transcript)
            conn.sendall(frame(framing.ACCEPT + pake.message))
            handshake.read(read_frame(conn))
            conn.sendall(frame(framing.ACCEPT + handshake.write(someone_else)))
            read_frame(conn)  # IK message 1, sealed to a key the rogue does not hold
            conn.sendall(frame(framing.ACCEPT + os.urandom(48)))
            time.sleep(0.5)

    thread = threading.Thread(target=rogue, daemon=True)
    thread.start()
    home = tmp_path / "consumer"
    with pytest.raises(PairingFailed, match="could not prove"):
        pair(code, f"unix:{tmp_path / 'rogue.sock'}", "victim", lay(home))
    thread.join(10)
    assert not (home / "connections.json").exists()


def test_a_confirmation_not_bound_to_this_pairing_is_refused(fresh: RunningListener) -> None:
    """A consumer that knows the code but runs the IK confirmation with another prologue (as a
    spliced-in run from elsewhere would) is refused; no peer is added and the failure is audited."""
    invite = fresh.invite(name="spliced")
    nameplate, code = pairing.parse_code(invite["code"])
    private = load_or_create_identity(fresh.home / "other.key")
    with unix(fresh.socket) as sock:
        pake = pairing.Pake(code, listener=False)
        sock.sendall(framing.preface(framing.MODE_PAIR))
        sock.sendall(frame(json.dumps({"nameplate": nameplate, "msg": pake.message.hex()}).encode()))
        listener_msg = read_frame(sock)[1:]
        transcript = pairing.transcript(nameplate, pake.message, listener_msg)
        handshake = noise_session.initiator_pair(pake.finish(listener_msg, transcript), transcript)
        sock.sendall(frame(handshake.write()))
        listener_key = handshake.read(read_frame(sock)[1:])
        confirm = noise_session.initiator_confirm(private, listener_key, bytes(32))
        sock.sendall(frame(confirm.write()))
        with pytest.raises(ConnectionFailed):
            read_frame(sock)
    assert "spliced" not in Peers(fresh.home / "peers.json").by_name
    assert pair_failed(fresh.audit_events())[-1]["reason"].startswith("the consumer did not prove its key")


# ---- single use, expiry, burning, rate limit ----

def test_a_code_pairs_once(fresh: RunningListener) -> None:
    invite = fresh.invite(name="once")
    pair(invite["code"], invite["address"], "once", lay(fresh.home))
    assert fetch(fresh.home) == "alligator5"
    with pytest.raises(PairingFailed, match="unknown, used or expired"):
        pair(invite["code"], invite["address"], "twice", lay(fresh.home))
    events = fresh.audit_events()
    assert [e["event"] for e in events if e["event"].startswith("pair")] == ["pair", "pair_failed"]
    assert set(Peers(fresh.home / "peers.json").by_name) == {"once"}


def test_a_code_expires(fresh: RunningListener) -> None:
    invite = fresh.invite(name="late", ttl="1s")
    time.sleep(1.2)  # not synchronisation: the invite's lifetime is what is being tested
    with pytest.raises(PairingFailed, match="unknown, used or expired"):
        pair(invite["code"], invite["address"], "late", lay(fresh.home))
    assert pair_failed(fresh.audit_events())[-1]["reason"] == "no such invite, or it expired"


def _right_code_after(fresh: RunningListener, attempt) -> dict:  # type: ignore[no-untyped-def]
    """Make one failed attempt on an invite's nameplate, then show the right code no longer works."""
    invite = fresh.invite(name="burned")
    attempt(invite)
    with pytest.raises(PairingFailed, match="unknown, used or expired"):
        pair(invite["code"], invite["address"], "burned", lay(fresh.home))
    assert not (fresh.home / "peers.json").exists()
    return pair_failed(fresh.audit_events())[0]


def _hello(sock: socket.socket, invite: dict, msg: bytes) -> None:
    sock.sendall(framing.preface(framing.MODE_PAIR))
    sock.sendall(frame(json.dumps({"nameplate": invite["code"][:4], "msg": msg.hex()}).encode()))


def test_one_wrong_code_burns_the_invite(fresh: RunningListener) -> None:
    def wrong(invite: dict) -> None:
        body = "2222-2222" if invite["code"][5:] != "2222-2222" else "3333-3333"
        with pytest.raises(PairingFailed, match="wrong pairing code"):
            pair(f"{invite['code'][:4]}-{body}", invite["address"], "x", lay(fresh.home))
    assert _right_code_after(fresh, wrong)["reason"] == "wrong pairing code; the invite is burned"


def test_walking_away_after_the_pake_burns_the_invite(fresh: RunningListener) -> None:
    def walk_away(invite: dict) -> None:
        with unix(fresh.socket) as sock:
            _hello(sock, invite, pairing.Pake(invite["code"], listener=False).message)
            assert read_frame(sock)[:1] == framing.ACCEPT
    event = _right_code_after(fresh, walk_away)
    assert event["reason"] == "the consumer left before proving the code; the invite is burned"


def test_a_malformed_pake_message_burns_the_invite(fresh: RunningListener) -> None:
    def malformed(invite: dict) -> None:
        with unix(fresh.socket) as sock:
            _hello(sock, invite, b"A" + bytes(32))
            assert sock.recv(1) == b""
    assert _right_code_after(fresh, malformed)["reason"].startswith("the consumer's PAKE message is malformed")


def test_a_wrong_static_in_the_confirmation_cannot_pair(fresh: RunningListener) -> None:
    """The IK confirmation proves the consumer's key: a low-order point as its static fails."""
    def low_order(invite: dict) -> None:
        nameplate, code = pairing.parse_code(invite["code"])
        with unix(fresh.socket) as sock:
            pake = pairing.Pake(code, listener=False)
            _hello(sock, invite, pake.message)
            listener_msg = read_frame(sock)[1:]
            transcript = pairing.transcript(nameplate, pake.message, listener_msg)
            handshake = noise_session.initiator_pair(pake.finish(listener_msg, transcript), transcript)
            sock.sendall(frame(handshake.write()))
            listener_key = handshake.read(read_frame(sock)[1:])
            confirm = noise_session.initiator_confirm(noise_session.generate_keypair()[0], listener_key,
                                                      handshake.handshake_hash)
            confirm._protocol.handshake_state.s.public_bytes = bytes(32)  # claim the zero point
            sock.sendall(frame(confirm.write()))
            assert sock.recv(1) == b""
    assert _right_code_after(fresh, low_order)["reason"] == "the consumer did not prove its key; the invite is burned"


def test_failed_pairings_are_rate_limited_and_audited(fresh: RunningListener) -> None:
    for _ in range(5):
        invite = fresh.invite()
        with pytest.raises(PairingFailed, match="wrong pairing code"):
            pair(f"{invite['code'][:4]}-2222-3333", invite["address"], "x", lay(fresh.home))
    good = fresh.invite(name="patient")
    with pytest.raises(PairingFailed, match="too many failed pairings"):
        pair(good["code"], good["address"], "patient", lay(fresh.home))
    events = pair_failed(fresh.audit_events())
    assert [e["decision"] for e in events] == ["denied"] * 5 + ["rate_limited"]
    log = fresh.audit_log.read_text()
    assert good["code"] not in log and good["code"][5:] not in log, "a pairing code reached the audit log"
    assert not (fresh.home / "peers.json").exists()


def test_the_pairing_exchange_pins_both_keys(fresh: RunningListener) -> None:
    invite = fresh.invite(name="pinned", scope=["github.com"])
    conn = pair(invite["code"], invite["address"], "pinned", lay(fresh.home))
    listener_key = json.loads((fresh.home / "listener.key").read_bytes())["private"]
    assert conn.public_bytes == noise_session.public_key(bytes.fromhex(listener_key))
    peer = Peers(fresh.home / "peers.json").by_name["pinned"]
    assert peer.public_bytes == noise_session.public_key(load_or_create_identity(fresh.home / "consumer.key"))
    assert peer.scope == ["github.com"]
    assert Connections(fresh.home / "connections.json").pick("pinned").address == invite["address"]
    assert fetch(fresh.home) == "alligator5"
