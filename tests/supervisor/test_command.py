"""Resolving the command before forking: 127 not found, 126 cannot execute, shebang loops refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from runwrap.errors import CannotExecute, CommandNotFound
from runwrap.supervise.command import resolve_command


def script(path: Path, text: str, mode: int = 0o755) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_found_on_the_childs_path_not_runwraps(tmp_path: Path) -> None:
    tool = script(tmp_path / "only-here", "#!/bin/sh\nexit 0\n")
    assert resolve_command("only-here", str(tmp_path)) == str(tool)
    with pytest.raises(CommandNotFound, match="only-here: command not found"):
        resolve_command("only-here", "/usr/bin:/bin")


def test_path_search_skips_what_cannot_run_and_takes_the_next(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    script(tmp_path / "a" / "tool", "#!/bin/sh\n", mode=0o644)
    good = script(tmp_path / "b" / "tool", "#!/bin/sh\n")
    assert resolve_command("tool", f"{tmp_path}/a:{tmp_path}/b") == str(good)


def test_no_path_uses_the_system_default() -> None:
    assert resolve_command("sh", None) in ("/bin/sh", "/usr/bin/sh")


def test_not_found_is_127() -> None:
    with pytest.raises(CommandNotFound) as info:
        resolve_command("no-such-command-xyz", "/usr/bin:/bin")
    assert info.value.exit_status == 127
    with pytest.raises(CommandNotFound):
        resolve_command("./no-such-file", "/usr/bin")


def test_a_directory_or_no_permission_is_126(tmp_path: Path) -> None:
    with pytest.raises(CannotExecute, match="Is a directory") as info:
        resolve_command(str(tmp_path), None)
    assert info.value.exit_status == 126
    plain = script(tmp_path / "plain", "#!/bin/sh\n", mode=0o644)
    with pytest.raises(CannotExecute, match="Permission denied"):  # even root needs an x bit
        resolve_command(str(plain), None)
    with pytest.raises(CannotExecute):
        resolve_command("plain", str(tmp_path))


@pytest.mark.parametrize("line", [
    "#!/usr/bin/env -S runwrap deploy --",
    "#!/usr/bin/env -S runwrap deploy --timeout 5s --",
    "#!/usr/local/bin/runwrap deploy --",
    "#!/usr/bin/env -S runwrap deploy",
])
def test_a_shebang_that_runs_runwrap_on_the_script_itself_is_refused(tmp_path: Path, line: str) -> None:
    loop = script(tmp_path / "loop", f"{line}\necho hi\n")
    with pytest.raises(CannotExecute, match="its shebang runs runwrap on itself") as info:
        resolve_command(str(loop), None)
    assert info.value.exit_status == 126


@pytest.mark.parametrize("line", [
    "#!/usr/bin/env -S runwrap deploy -- bash",
    "#!/usr/bin/env -S runwrap deploy -- python3 -u",
    "#!/bin/bash",
    "#!/usr/bin/env python3",
])
def test_other_shebangs_are_fine(tmp_path: Path, line: str) -> None:
    ok = script(tmp_path / "ok", f"{line}\necho hi\n")
    assert resolve_command(str(ok), None) == str(ok)


def test_driver_reports_126_and_127(procs, tmp_path: Path) -> None:
    done = procs.run([], ["no-such-command-xyz"])
    assert done.returncode == 127
    assert done.stderr == b"runwrap: no-such-command-xyz: command not found\n"
    loop = script(tmp_path / "loop", "#!/usr/bin/env -S runwrap deploy --\n")
    done = procs.run([], [str(loop)])
    assert done.returncode == 126
    assert b"refusing to run" in done.stderr and b"its shebang runs runwrap on itself" in done.stderr


def test_exec_errors_travel_back_with_their_errno(procs, tmp_path: Path) -> None:
    # Found and executable, but its interpreter does not exist: execve fails in the child.
    bad = script(tmp_path / "bad-interpreter", "#!/no/such/interpreter\n")
    done = procs.run([], [str(bad)])
    assert done.returncode == 126
    assert done.stderr == f"runwrap: {bad}: No such file or directory\n".encode()


def test_a_script_without_shebang_runs_with_sh_as_execvp_does(procs, tmp_path: Path) -> None:
    plain = script(tmp_path / "plain", "echo from-sh; exit 3\n")
    done = procs.run(["--no-mask"], [str(plain)])
    assert (done.returncode, done.stdout) == (3, b"from-sh\n")
