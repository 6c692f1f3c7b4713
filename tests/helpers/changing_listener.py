"""A listener that pushes changes on demand: the real wire (preface, Noise IK, messages) on a Unix
socket, for the consumer's rotation tests before the real listener watches a vault.

    changing_listener.py FOLDER

FOLDER/items.json is {domain: {field: value}}; each REQUEST is answered from it. FOLDER/public
gets the listener's public key (hex) once it listens on FOLDER/listener.sock. Each line written to
the FIFO FOLDER/push re-reads items.json and sends CHANGED with every request whose fields now
differ from what this session was last sent. FOLDER/log gets a JSON line per HOLD, ROTATED and
LEASE_END. One session at a time; it serves until killed.
"""

from __future__ import annotations

import json
import os
import select
import socket
import sys
from pathlib import Path
from typing import Any

from runwrap.wire import framing, messages, noise_session


def log(folder: Path, entry: dict[str, Any]) -> None:
    with open(folder / "log", "a") as f:
        f.write(json.dumps(entry) + "\n")


def serve(folder: Path, conn: socket.socket, private: bytes, push: int) -> None:
    framing.parse_preface(conn.recv(framing.PREFACE_LEN, socket.MSG_WAITALL))
    handshake = noise_session.responder_ik(private)
    handshake.read(framing.recv_frame(conn, deadline=None))
    framing.send_frame(conn, framing.ACCEPT + handshake.write())
    session = handshake.session()
    served: list[tuple[str, list[str], dict[str, str]]] = []  # per request: domain, fields, values sent
    seq = 0

    def send(header: dict[str, Any], blobs: dict[str, bytes] | None = None) -> None:
        framing.send_frame(conn, session.encrypt(messages.encode(header, blobs)))

    while True:
        ready, _, _ = select.select([conn, push], [], [])
        if push in ready:
            os.read(push, 4096)
            items = json.loads((folder / "items.json").read_text())
            changed, blobs = [], {}
            for index, (domain, fields, sent) in enumerate(served):
                now = {name: items[domain][name] for name in fields if name in items[domain]}
                if now != sent:
                    changed.append({"request": index, "reason": "changed", "ttl": None, "available": None})
                    blobs.update({f"{index}/{name}": value.encode() for name, value in now.items()})
                    served[index] = (domain, fields, now)
            if changed:
                seq += 1
                send({"type": messages.CHANGED, "seq": seq, "items": changed}, blobs)
        if conn in ready:
            try:
                header, _ = messages.decode(session.decrypt(framing.recv_frame(conn, deadline=None)))
            except Exception:  # the consumer went away
                return
            kind = header["type"]
            if kind == messages.REQUEST:
                domain, fields = header["query"]["domain"], header["fields"]
                values = {name: json.loads((folder / "items.json").read_text())[domain][name] for name in fields}
                served.append((domain, fields, values))
                send({"type": messages.CREDENTIAL, "lease": "l1"}, {n: v.encode() for n, v in values.items()})
            elif kind == messages.HOLD:
                log(folder, {"hold": {"watch": header.get("watch", False)}})
            elif kind == messages.ROTATED:
                log(folder, {"rotated": header["seq"]})
            elif kind == messages.LEASE_END:
                log(folder, {"lease_end": header["exit"]})
                return


def main(folder: Path) -> None:
    private, public = noise_session.generate_keypair()
    push_path = folder / "push"
    os.mkfifo(push_path, 0o600)
    push = os.open(push_path, os.O_RDWR | os.O_NONBLOCK)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(folder / "listener.sock"))
    server.listen()
    (folder / "public.tmp").write_text(public.hex())
    os.rename(folder / "public.tmp", folder / "public")
    while True:
        conn, _ = server.accept()
        with conn:
            serve(folder, conn, private, push)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
