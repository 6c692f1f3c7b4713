"""TERM to `runwrap listen` ends it at once, a held session open, with its audit log closed cleanly
(issue 13, section 6: it took ~1.4 s, and a held session's task left a traceback on stderr)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from runwrap.testing.listener import RunningListener, runwrap_executable
from tests.polling import wait_for

PROFILE = "credentials:\n  - domain: github.com\n    env: {TOKEN: password}\n"
BOUND = 0.5  # seconds from TERM to the process gone; ~0.03-0.08 s measured, 0.16-0.57 s before the fix


def test_term_ends_the_listener_at_once_with_a_held_session(tmp_path):
    with RunningListener() as listener:
        listener.pair()
        profile = tmp_path / "p.yaml"
        profile.write_text(PROFILE)
        consumer = subprocess.Popen([runwrap_executable(), str(profile), "--", "sleep", "60"], env=listener.env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: any(e["event"] == "request" for e in listener.audit_events()), 20,
                     "the consumer's request")
            assert listener.process is not None
            started = time.monotonic()
            os.kill(listener.process.pid, signal.SIGTERM)
            status = listener.process.wait(10)
            took = time.monotonic() - started
        finally:  # a lost listener is not a revocation: the consumer's child runs on until it ends
            consumer.kill()
            consumer.wait()
        assert status == 0
        assert took < BOUND, f"the listener took {took:.3f}s to stop on TERM"
        output = listener.output()
        assert "Traceback" not in output and "Exception" not in output, output
        # Closed cleanly: whole lines, every one JSON, and the held lease ended on the record.
        text = listener.audit_log.read_text()
        assert text.endswith("\n")
        events = [json.loads(line) for line in text.splitlines()]
        ends = [e for e in events if e["event"] == "lease_end"]
        assert len(ends) == 1 and "the listener stopped" in ends[0]["reason"]
        assert not listener.socket.exists()
