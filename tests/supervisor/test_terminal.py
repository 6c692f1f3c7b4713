"""Terminals, driven in tmux: pty mode (masking on, stdout a terminal) and the pass-through mode.

Each test gets its own tmux server running `bash --norc` with a short `rw` command for the driver.
Typing, Ctrl-C, Ctrl-Z then `fg`, and resizing must behave as they do without runwrap.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.polling import wait_for

from .supervisor_support import DRIVER, PYTHON, running

SECRET = b"correct-horse-battery-staple"


class Tmux:
    def __init__(self, procs, tmp: Path) -> None:
        self.socket = f"rwtest-{procs.mark[:12]}"
        rw = tmp / "rw"
        rw.write_text(f"#!/bin/sh\nexec {shlex.join(DRIVER)} \"$@\"\n")
        rw.chmod(0o755)
        (tmp / "secret").write_bytes(SECRET)
        env = procs.env(PATH=f"{tmp}:/usr/bin:/bin", HOME=str(tmp), TERM="xterm")
        self.tmux("-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", "100", "-y", "30",
                  "bash --norc --noprofile", env=env)
        wait_for(lambda: self.screen().strip(), what="bash to start")
        self.type(f"PS1='$ '; cd {tmp}; PY={PYTHON}; clear")
        wait_for(lambda: self.screen().strip() == "$", what="a clear screen")

    def tmux(self, *args: str, env: dict[str, str] | None = None) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, check=True,
                              env=env, timeout=10).stdout.decode()

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "t", *keys)

    def type(self, line: str) -> None:
        self.tmux("send-keys", "-t", "t", "-l", line)
        self.keys("Enter")

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-J", "-t", "t")

    def wait(self, text: str, count: int = 1, timeout: float = 15.0) -> str:
        return wait_for(lambda: self.screen() if self.screen().count(text) >= count else "",
                        timeout, what=f"{text!r} x{count} on the screen")

    def prompt(self, count: int = 1) -> str:
        """Wait until the shell's prompt is the last line (typeahead read by a proxy before its child
        exits is lost, as with script(1); so tests type only once the shell is back)."""
        return wait_for(lambda: (lambda s: s if s.rstrip().endswith("\n$") else "")(self.screen()),
                        15.0, what="the shell prompt")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=10)
        socket = Path(os.environ.get("TMUX_TMPDIR", "/tmp"), f"tmux-{os.getuid()}", self.socket)
        socket.unlink(missing_ok=True)


@pytest.fixture
def tmux(procs, tmp_path: Path) -> Iterator[Tmux]:
    t = Tmux(procs, tmp_path)
    try:
        yield t
    finally:
        t.close()


MODES = {"pty": "--secret T=secret", "no-mask": "--no-mask --secret T=secret"}


def test_pty_mode_the_child_sees_a_terminal_and_the_secret_is_masked(tmux: Tmux) -> None:
    tmux.type("rw --secret T=secret -- $PY -c 'import os; print(*map(os.isatty, (0, 1, 2)), os.environ[\"T\"])'")
    screen = tmux.wait("True True True ***")
    assert SECRET.decode() not in screen


@pytest.mark.parametrize("mode", MODES)
def test_ctrl_c_reaches_a_python_repl_once(tmux: Tmux, mode: str) -> None:
    tmux.type(f"rw {MODES[mode]} -- $PY -q")
    tmux.wait(">>> ")
    tmux.keys("C-c")
    tmux.wait("KeyboardInterrupt")
    tmux.type("print(6 * 7)")
    screen = tmux.wait("42\n>>> ")
    assert screen.count("KeyboardInterrupt") == 1
    tmux.keys("C-d")
    tmux.prompt()
    tmux.type("echo status=$?")
    tmux.wait("status=0")


@pytest.mark.parametrize("mode", MODES)
def test_ctrl_z_then_fg(tmux: Tmux, mode: str) -> None:
    tmux.type(f"rw {MODES[mode]} -- $PY -q")
    tmux.wait(">>> ")
    tmux.keys("C-z")
    tmux.wait("Stopped")
    tmux.type("jobs -l")
    tmux.wait("Stopped", count=2)
    tmux.type("fg")
    tmux.type("print(6 * 7)")
    tmux.wait("\n42\n")
    tmux.keys("C-d")
    tmux.prompt()
    tmux.type("echo status=$?")
    tmux.wait("status=0")


def test_a_resize_is_visible_to_an_interactive_shell_in_the_pty(tmux: Tmux) -> None:
    tmux.type("rw --secret T=secret -- bash --norc --noprofile -i")
    tmux.type("echo tty=$(tty) T=$T; stty size")
    screen = tmux.wait("30 100")
    assert re.search(r"tty=/dev/pts/\d+ T=\*\*\*", screen)
    tmux.tmux("resize-window", "-t", "t", "-x", "80", "-y", "20")
    tmux.type("stty size")
    tmux.wait("20 80")
    tmux.type("exit 3")
    tmux.prompt()
    tmux.type("echo status=$?")
    tmux.wait("status=3")


@pytest.mark.parametrize("mode", MODES)
def test_ctrl_c_stops_a_calling_script_as_cracauer_asks(procs, tmux: Tmux, tmp_path: Path, mode: str) -> None:
    (tmp_path / "script.sh").write_text(
        f"echo started\nrw {MODES[mode]} -- sleep 100\necho after\n")
    tmux.type("bash script.sh")
    tmux.wait("started")
    wait_for(lambda: running(procs.mark, ["sleep", "100"]), what="sleep to run")
    tmux.keys("C-c")
    tmux.prompt()
    tmux.type("echo status=$?")  # not on the same line: bash drops the rest of a line after a ^C death
    screen = tmux.wait("\nstatus=")
    assert "status=130" in screen
    assert "after" not in screen


@pytest.mark.parametrize("mode", MODES)
def test_a_child_that_handles_ctrl_c_lets_the_script_go_on(tmux: Tmux, tmp_path: Path, mode: str) -> None:
    (tmp_path / "script.sh").write_text(
        f"rw {MODES[mode]} -- $PY -c 'import time\ntry:\n  print(\"ready\", flush=True); time.sleep(100)\n"
        "except KeyboardInterrupt:\n  print(\"caught\")'\necho after\n")
    tmux.type("PY=$PY bash script.sh; echo status=$?")
    tmux.wait("ready")
    tmux.keys("C-c")
    screen = tmux.wait("status=0")
    assert "caught" in screen and "after" in screen


@pytest.mark.parametrize("ending", ["exit 4", "kill -INT $$", "kill -KILL $$", "sleep 60"])
def test_the_terminal_modes_are_restored_however_the_child_ends(tmux: Tmux, tmp_path: Path, ending: str) -> None:
    timeout = "--timeout 0.5 " if ending.startswith("sleep") else ""
    # A script, not the interactive shell: that one drops the rest of a line after a SIGINT death.
    (tmp_path / "end.sh").write_text(f"rw --secret T=secret {timeout}-- sh -c '{ending}'\necho status=$?\n")
    tmux.type("stty -g > before; bash end.sh; stty -g > after; cmp before after && echo same-modes")
    screen = tmux.wait("\nsame-modes")
    assert re.search(r"\nstatus=(4|130|137|124)\n", screen)


def test_pty_mode_with_stderr_redirected_keeps_it_apart_and_masked(tmux: Tmux, tmp_path: Path) -> None:
    tmux.type("rw --secret T=secret -- $PY -c 'import os,sys; print(os.isatty(1), os.isatty(2), os.environ[\"T\"]);"
              " print(\"err\", os.environ[\"T\"], file=sys.stderr)' 2> err.txt; echo done")
    screen = tmux.wait("\ndone")
    assert "True False ***" in screen
    assert (tmp_path / "err.txt").read_bytes() == b"err ***\n"
    assert SECRET.decode() not in screen


@pytest.mark.parametrize("child", ["readline", "pty echo"])
def test_a_typed_key_that_could_begin_the_secret_is_echoed_at_once(tmux: Tmux, child: str) -> None:
    # The secret begins with 'c', so the masker holds a 'c' back as the possible start of it; but
    # this one is the echo of what the user typed (by readline in bash, by the pty itself for cat),
    # not the child's own output, so it shows at once.
    if child == "pty echo":
        tmux.type("rw --secret T=secret -- sh -c 'echo ready; exec cat'")
        before = tmux.wait("\nready\n").rstrip()  # on the screen only once runwrap is in raw mode
        tmux.keys("c")
        wait_for(lambda: tmux.screen().rstrip() == before + "\nc", what=lambda: f"the echo: {tmux.screen()!r}")
        tmux.keys("o", "r")
        wait_for(lambda: tmux.screen().rstrip() == before + "\ncor", what=lambda: f"the echo: {tmux.screen()!r}")
        tmux.keys("Enter")
        wait_for(lambda: tmux.screen().rstrip() == before + "\ncor\ncor", what=lambda: f"cat: {tmux.screen()!r}")
        tmux.keys("C-d")
    else:
        tmux.type("rw --secret T=secret -- bash --norc --noprofile -i")
        tmux.type("PS1='IN> '")
        tmux.wait("\nIN> ")
        tmux.keys("c")
        tmux.wait("\nIN> c")
        tmux.keys("o", "r")
        tmux.wait("\nIN> cor")
        tmux.keys("C-u")
        tmux.type('echo "[$T]"')
        screen = tmux.wait("\n[***]")
        assert SECRET.decode() not in screen
        tmux.type("exit")
    tmux.prompt()
