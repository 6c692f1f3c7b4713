"""Pipe mode (masking on, stdout not a terminal): masked, streamed, stdout and stderr kept apart."""

from __future__ import annotations

import base64
import subprocess
import time
from pathlib import Path

from tests.polling import wait_for

from .supervisor_support import PYTHON

SECRET = b"correct-horse-battery-staple"


def secret_file(tmp_path: Path, value: bytes = SECRET) -> Path:
    path = tmp_path / "secret"
    path.write_bytes(value)
    return path


def test_the_secret_is_masked_on_stdout_and_stderr_which_stay_apart(procs, tmp_path: Path) -> None:
    report, reporter = procs.report()
    done = procs.run(["--secret", f"TOKEN={secret_file(tmp_path)}"],
                     [*reporter, "--echo-env", "TOKEN", "--exit", "3"])
    assert done.returncode == 3
    assert done.stdout == b"out:***\n"
    assert done.stderr == b"err:***\n"
    assert report.env()[b"TOKEN"] == SECRET  # the child itself got the real value


def test_encodings_and_pieces_written_apart_are_masked(procs, tmp_path: Path) -> None:
    code = (
        "import os,sys,time\n"
        "v=os.environb[b'TOKEN']\n"
        "os.write(1, b'b64 ' + __import__('base64').b64encode(v) + b'\\n')\n"
        "os.write(1, b'split ' + v[:7]); time.sleep(0.3); os.write(1, v[7:] + b' end\\n')\n"
        "os.write(2, b'binary \\x00\\xff' + v + b'\\xfe\\n')\n"
    )
    done = procs.run(["--secret", f"TOKEN={secret_file(tmp_path)}"], [PYTHON, "-c", code])
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout + done.stderr
    assert base64.b64encode(SECRET) not in done.stdout
    b64_line, split_line = done.stdout.splitlines()
    assert b64_line.startswith(b"b64 ***") and len(b64_line) <= len(b"b64 ***") + 3  # padding may stay
    assert split_line == b"split *** end"
    assert done.stderr == b"binary \x00\xff***\xfe\n"


def test_a_line_without_a_secret_arrives_before_the_child_finishes(procs, tmp_path: Path) -> None:
    code = "import os,time\nos.write(1, b'first line\\n')\ntime.sleep(30)\n"
    driver = procs.start(["--secret", f"TOKEN={secret_file(tmp_path)}"], [PYTHON, "-c", code])
    started = time.monotonic()
    line = driver.stdout.readline()
    assert line == b"first line\n"
    assert time.monotonic() - started < 20
    driver.terminate()
    assert driver.wait(timeout=10) == -15


def test_short_values_are_announced_once(procs, tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_bytes(b"abc")
    done = procs.run(["--secret", f"A={short}", "--secret", f"B={secret_file(tmp_path)}"],
                     ["sh", "-c", 'echo "$A $B"'])
    assert done.stdout == b"abc ***\n"
    assert done.stderr == b"runwrap: 1 injected value(s) shorter than 4 characters are not masked\n"


def test_no_mask_inherits_runwraps_stdio(procs, tmp_path: Path) -> None:
    report, reporter = procs.report()
    out = tmp_path / "out"
    with open(out, "wb") as sink:
        done = procs.run(["--no-mask", "--secret", f"TOKEN={secret_file(tmp_path)}"],
                         [*reporter, "--echo-env", "TOKEN", "--exit", "0"], stdout=sink)
    assert done.returncode == 0
    assert out.read_bytes() == b"out:" + SECRET + b"\n"  # unmasked, straight to the file
    # The very same file, not a pipe: runwrap is not in the way.
    info = report.info()
    assert info["isatty"] == [False, False, False]


def test_a_closed_reader_ends_a_writing_child_with_sigpipe_as_without_runwrap(procs, tmp_path: Path) -> None:
    driver = procs.start(["--secret", f"TOKEN={secret_file(tmp_path)}"], ["yes"])
    wait_for(lambda: driver.stdout.read(4096), what="output")
    driver.stdout.close()
    assert driver.wait(timeout=10) == -13  # `yes` died of SIGPIPE; so does runwrap


def test_masking_against_cat_in_a_shell_pipeline(procs, tmp_path: Path) -> None:
    # Large output passes through whole and in order.
    done = procs.run(["--secret", f"TOKEN={secret_file(tmp_path)}"],
                     ["sh", "-c", 'seq 1 200000; echo "$TOKEN"'], timeout=60)
    expected = subprocess.run(["seq", "1", "200000"], capture_output=True, check=True).stdout + b"***\n"
    assert done.stdout == expected


# --- encodings written by real tools, under the supervisor ---------------------------------------

def encoded_run(procs, tmp_path: Path, script: str, *flags: str) -> bytes:
    """Run `sh -c script` with TOKEN injected; its stdout, checked to exit 0 with nothing on stderr."""
    done = procs.run([*flags, "--secret", f"TOKEN={secret_file(tmp_path)}"], ["sh", "-c", script])
    assert done.returncode == 0 and done.stderr == b"", done.stderr
    return done.stdout


def test_base64_wrapped_at_20_columns_by_the_real_tool(procs, tmp_path: Path) -> None:
    # Not at the start of the stream: the value's characters begin mid-line and run over two breaks.
    out = encoded_run(procs, tmp_path, 'echo start; { printf 0123456; printf %s "$TOKEN"; } | base64 -w 20; echo end')
    encoded = subprocess.run(["base64", "-w", "20"], input=b"0123456" + SECRET, capture_output=True,
                             check=True).stdout
    assert SECRET not in out and encoded not in out
    # Hidden: the characters whose bits all lie in the value (10 to 45 of 48), with the breaks
    # between them; left: those that also carry the 7 bytes before it, the padding, the last break.
    flat = encoded.replace(b"\n", b"")
    first, last = -(-8 * 7 // 6), (8 * (7 + len(SECRET)) - 6) // 6
    assert (first, last, len(flat)) == (10, 45, 48)
    assert out == b"start\n" + flat[:first] + b"***" + flat[last + 1:] + b"\nend\n"


def test_a_hex_dump_by_xxd_is_masked_when_hex_is_asked_for(procs, tmp_path: Path) -> None:
    script = '{ printf "header-bytes-0123456789"; printf %s "$TOKEN"; } | xxd -p; echo end'
    out = encoded_run(procs, tmp_path, script, "--mask-hex")
    dump = subprocess.run(["xxd", "-p"], input=b"header-bytes-0123456789" + SECRET, capture_output=True,
                          check=True).stdout
    assert SECRET.hex().encode() not in out.replace(b"\n", b"")
    assert out == dump[:2 * 23] + b"***\nend\n"  # 60 hex digits a line: the value ran across a break
    # Off unless asked for: a search per value over all output is too dear to do by default.
    assert encoded_run(procs, tmp_path, script) == dump + b"end\n"


def test_an_od_dump_is_masked_when_hex_is_asked_for(procs, tmp_path: Path) -> None:
    out = encoded_run(procs, tmp_path, '{ printf 0123456789; printf %s "$TOKEN"; } | od -An -tx1 -v', "--mask-hex")
    dump = subprocess.run(["od", "-An", "-tx1", "-v"], input=b"0123456789" + SECRET, capture_output=True,
                          check=True).stdout
    assert " ".join(f"{byte:02x}" for byte in SECRET).encode() not in b" ".join(out.split())
    assert out == dump[:dump.index(b" 63 6f 72")] + b" ***\n"


def test_percent_and_json_forms_written_by_a_python_child(procs, tmp_path: Path) -> None:
    value = b"p@ss/w0rd+key=42 x"
    code = r"""
import os, json, urllib.parse
v = os.environ["TOKEN"]
print(urllib.parse.quote(v, safe="").lower(), urllib.parse.quote_plus(v))
print('{"t": "%s"}' % "".join("\\u%04x" % ord(c) for c in v))
print(json.dumps({"t": v}).replace("/", "\\/"))
"""
    done = procs.run(["--secret", f"TOKEN={secret_file(tmp_path, value)}"], [PYTHON, "-c", code])
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"*** ***\n" + b'{"t": "***"}\n' * 2
