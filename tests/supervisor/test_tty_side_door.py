"""With masking on, the child's terminal is always a pty of runwrap's, masked — even when runwrap's
stdout is piped or redirected: writing to /dev/tty or to a terminal stdin is no side door, prompts
on /dev/tty still read what is typed, and Ctrl-C, Ctrl-Z and resizing keep working. In tmux."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.polling import wait_for

from .supervisor_support import running
from .test_terminal import SECRET, Tmux


@pytest.fixture
def tmux(procs, tmp_path: Path) -> Iterator[Tmux]:
    t = Tmux(procs, tmp_path)
    try:
        yield t
    finally:
        t.close()


SIDE_DOORS = "echo tty:$T > /dev/tty; echo in:$T >&0; echo out:$T; echo err:$T >&2"


@pytest.mark.parametrize("redirect", ["| cat", "< /dev/null | cat", "> out.txt 2>&1", "< /dev/null > out.txt 2>&1"])
def test_what_the_child_writes_to_its_terminal_is_masked_however_stdout_goes(tmux: Tmux, tmp_path: Path,
                                                                             redirect: str) -> None:
    tmux.type(f"rw --secret T=secret -- sh -c '{SIDE_DOORS}' {redirect}; echo status=$?")
    screen = tmux.wait("\nstatus=0")
    assert "tty:***" in screen
    if "<" not in redirect:
        assert "in:***" in screen
    assert SECRET.decode() not in screen
    if "out.txt" in redirect:
        assert SECRET not in (tmp_path / "out.txt").read_bytes()


def test_the_child_sees_which_of_its_fds_are_terminals_as_without_runwrap(tmux: Tmux, tmp_path: Path) -> None:
    code = "import os; print(*map(os.isatty, (0, 1, 2)), os.path.exists(\"/dev/tty\") and os.ttyname(0))"
    tmux.type(f"rw --secret T=secret -- $PY -c '{code}' > out.txt; echo status=$?")
    tmux.wait("\nstatus=0")
    isatty = (tmp_path / "out.txt").read_text().split()
    assert isatty[:3] == ["True", "False", "True"]
    assert isatty[3].startswith("/dev/pts/")


@pytest.mark.parametrize("stdin", ["", "< /dev/null"])
def test_a_prompt_on_dev_tty_reads_what_is_typed_with_stdout_piped(tmux: Tmux, stdin: str) -> None:
    tmux.type(f"rw --secret T=secret -- sh -c 'printf \"say%s \" : > /dev/tty; read x < /dev/tty; echo got $x:$T'"
              f" {stdin} | cat; echo status=$?")
    tmux.wait("say: ")
    tmux.type("hello")
    screen = tmux.wait("\nstatus=0")
    assert "got hello:***" in screen


def test_a_prompt_on_dev_tty_reads_what_is_typed_with_stdin_piped_and_stdout_a_terminal(tmux: Tmux) -> None:
    tmux.type("echo piped | rw --secret T=secret -- sh -c 'read a; printf \"say%s \" : > /dev/tty; read b < /dev/tty;"
              " echo got $a $b'; echo status=$?")
    tmux.wait("say: ")
    tmux.type("typed")
    screen = tmux.wait("\nstatus=0")
    assert "got piped typed" in screen


def test_ctrl_c_and_a_repl_with_stdout_redirected(tmux: Tmux, tmp_path: Path) -> None:
    tmux.type("rw --secret T=secret -- $PY -u -q > out.txt")
    tmux.wait(">>> ")  # the prompt goes to stderr, the pty
    tmux.keys("C-c")
    tmux.wait("KeyboardInterrupt")
    tmux.type("print(6 * 7)")
    wait_for(lambda: (tmp_path / "out.txt").read_text() == "42\n", what="42 in out.txt")
    tmux.wait(">>> ", count=3)
    assert tmux.screen().count("KeyboardInterrupt") == 1
    tmux.keys("C-d")
    tmux.prompt()
    tmux.type("echo status=$?")
    tmux.wait("status=0")


def test_ctrl_z_then_fg_with_stdout_piped(tmux: Tmux) -> None:
    tmux.type("rw --secret T=secret -- $PY -u -q | cat")
    tmux.wait(">>> ")
    tmux.keys("C-z")
    tmux.wait("Stopped")
    tmux.type("fg")
    tmux.type("print(6 * 7)")
    # 42 comes through cat, the next prompt through the pty: either may be first, as without runwrap.
    wait_for(lambda: "42" in tmux.screen().rpartition("\n$ fg\n")[2], what="42 after fg")
    tmux.keys("C-d")
    tmux.prompt()
    tmux.type("echo status=$?")
    tmux.wait("status=0")


def test_a_resize_reaches_the_pty_with_stdout_piped(tmux: Tmux) -> None:
    tmux.type("rw --secret T=secret -- bash --norc --noprofile -i | cat")
    tmux.type("stty size; echo T=$T")
    tmux.wait("30 100")
    tmux.tmux("resize-window", "-t", "t", "-x", "80", "-y", "20")
    tmux.type("stty size")
    tmux.wait("20 80")
    assert "T=***" in tmux.screen()
    tmux.type("exit 3")
    tmux.prompt()
    tmux.type("echo status=${PIPESTATUS[0]}")
    tmux.wait("status=3")


def test_ctrl_c_stops_a_calling_script_with_stdout_piped(procs, tmux: Tmux, tmp_path: Path) -> None:
    (tmp_path / "script.sh").write_text("echo started\nrw --secret T=secret -- sleep 100 | cat\necho after\n")
    tmux.type("bash script.sh")
    tmux.wait("started")
    wait_for(lambda: running(procs.mark, ["sleep", "100"]), what="sleep to run")
    tmux.keys("C-c")
    tmux.prompt()
    tmux.type("echo status=$?")
    screen = tmux.wait("\nstatus=")
    assert "status=130" in screen
    assert "after" not in screen


def test_a_pager_after_runwrap_keeps_its_keys(tmux: Tmux) -> None:
    # less puts the terminal out of canonical mode before runwrap starts the child: runwrap then
    # reads no keys, so each one reaches less (two readers would split them).
    tmux.type("rw --secret T=secret -- sh -c 'seq 101 140; echo $T; sleep 100' | LESS= less")
    tmux.wait("\n129\n")
    for _ in range(5):
        tmux.keys("j")  # one line down, in less
    screen = tmux.wait("\n134\n")
    assert screen.splitlines()[0] == "106"
    tmux.keys("q")
    tmux.keys("C-c")  # the child still sleeps, as it would without runwrap
    tmux.prompt()
