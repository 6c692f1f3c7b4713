"""`files:` end to end: the installed runwrap, a real listener, real children reading their files.

What the child gets (a read-only /dev/fd/N of a memory file, with the mode asked for), what it
shows (masked), what `--dry-run` and `profiles check` say, `run --file`, the `path: true` folder
(private, on tmpfs, gone however the child ended), and that bad entries are refused before the
listener is asked for anything.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time

import pytest

from runwrap.errors import UsageError
from runwrap.testing.listener import runwrap_executable
from tests.integration.files_support import memory_folders, profile, requests, runwrap, vault_listener

USER = "user-" + secrets.token_hex(6)
PASSWORD = "pw-" + secrets.token_hex(12)
NOTE_LINE = secrets.token_hex(16)
NOTES = f"-----BEGIN NOTE-----\n{NOTE_LINE}\n-----END NOTE-----\n"
ITEMS = [{"credential_id": "db-1", "domain": "db.internal", "username": USER, "password": PASSWORD,
          "notes": NOTES}]

PGPASS = """\
credentials:
  - domain: db.internal
    env: {PGUSER: username}
    files:
      PGPASSFILE: {template: "127.0.0.1:*:*:{{username}}:{{password}}\\n", mode: "0600"}
      NOTE: {field: notes}
"""

SHARED = """\
credentials:
  - domain: db.internal
    files:
      SHARED: {field: password, path: true}
"""

INSPECT = r"""
import json, os, stat, sys
out = {}
for var in sys.argv[1:]:
    path = os.environ[var]
    info = os.stat(path)
    entry = {"path": path, "mode": stat.S_IMODE(info.st_mode), "regular": stat.S_ISREG(info.st_mode),
             "uid": info.st_uid, "first": open(path).read(), "second": open(path).read()}
    if path.startswith("/dev/fd/"):
        fdinfo = open("/proc/self/fdinfo/" + path.rsplit("/", 1)[1]).read()
        entry["flags"] = int(fdinfo.split("flags:")[1].split()[0], 8)
        entry["link"] = os.readlink(path)
    out[var] = entry
print(json.dumps(out))
"""

# Prints its pid and the path, then waits for a line on stdin (or to be killed).
WAIT = "import os, sys; print(os.getpid(), os.environ['SHARED'], flush=True); sys.stdin.readline()"


@pytest.fixture(scope="module")
def vault(tmp_path_factory):
    listener = vault_listener(tmp_path_factory.mktemp("vault"), ITEMS)
    yield listener
    listener.cleanup()


def test_a_file_is_a_read_only_dev_fd_of_a_memory_file_with_the_mode_asked_for(vault, tmp_path):
    result = runwrap(vault, profile(tmp_path, PGPASS), "--no-mask", "--", sys.executable, "-c", INSPECT,
                     "PGPASSFILE", "NOTE")
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    pgpass, note = seen["PGPASSFILE"], seen["NOTE"]
    assert pgpass["first"] == pgpass["second"] == f"127.0.0.1:*:*:{USER}:{PASSWORD}\n"
    assert note["first"] == note["second"] == NOTES
    assert (pgpass["mode"], note["mode"]) == (0o600, 0o400)  # 0400 is the default
    for entry in (pgpass, note):
        assert entry["path"].startswith("/dev/fd/") and entry["regular"] and entry["uid"] == os.getuid()
        assert entry["flags"] & os.O_ACCMODE == os.O_RDONLY  # the child's descriptor cannot write
        assert entry["link"].startswith("/memfd:runwrap:")  # an anonymous memory file, no path on a disk
    (request,) = requests(vault)[-1:]
    assert request["fields"] == ["notes", "password", "username"]


def test_the_values_inside_a_file_are_masked(vault, tmp_path):
    result = runwrap(vault, profile(tmp_path, PGPASS), "--", "sh", "-c", 'cat "$PGPASSFILE" "$NOTE"')
    assert result.returncode == 0, result.stderr
    assert result.stdout == "127.0.0.1:*:*:***:***\n***"  # the whole note is one masked value
    assert USER not in result.stdout and PASSWORD not in result.stdout and NOTE_LINE not in result.stdout


def test_dry_run_shows_the_files_never_their_content_and_asks_for_nothing(vault, tmp_path):
    before = len(requests(vault))
    result = runwrap(vault, profile(tmp_path, PGPASS.replace("NOTE: {field: notes}",
                                                             "NOTE: {field: notes, path: true}")),
                     "--dry-run", "--", "true")
    assert result.returncode == 0, result.stderr
    assert "would make the file PGPASSFILE: template of username, password, mode 0600, /dev/fd/N" in result.stdout
    assert "would make the file NOTE: field notes, mode 0400, a path in a private folder under /dev/shm" \
        in result.stdout
    assert USER not in result.stdout and PASSWORD not in result.stdout
    assert len(requests(vault)) == before


BAD = {
    "both": ('F: {field: notes, template: "{{password}}"}', "has both template: and field:"),
    "neither": ('F: {mode: "0600"}', "has neither template: nor field:"),
    "unclosed": ('F: {template: "x:{{password"}', "the template has a {{ at character 3 with no }}"),
    "expression": ('F: {template: "{{password|upper}}"}', "is not a field (templates substitute {{field}} only)"),
    "not octal": ('F: {field: notes, mode: "0x180"}', "is not an octal file mode"),
    "others": ('F: {field: notes, mode: "0604"}', "gives other users access"),
    "group write": ('F: {field: notes, mode: "0620"}', "lets the group write"),
    "env clash": ("PGUSER: {field: notes}", "PGUSER is also set by this credential"),
    "set clash": ("DEPLOY: {field: notes}", "DEPLOY is also set in env.set"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_entry_is_refused_with_its_line_before_anything_is_fetched(vault, tmp_path, case):
    entry, expected = BAD[case]
    text = (f"credentials:\n  - domain: db.internal\n    env: {{PGUSER: username}}\n    files:\n      {entry}\n"
            "env:\n  set: {DEPLOY: prod}\n")
    path = profile(tmp_path, text)
    before = len(requests(vault))
    result = runwrap(vault, path, "--", "true")
    assert result.returncode == 125
    assert result.stderr.startswith(f"runwrap: {path}:5: ") and expected in result.stderr and " — " in result.stderr
    checked = runwrap(vault, "profiles", "check", path)
    assert checked.returncode == 1 and f"{path}:5: " in checked.stderr and expected in checked.stderr
    assert len(requests(vault)) == before


def test_run_file_gives_a_field_as_a_file_without_a_profile(vault):
    show = "import os; print(open(os.environ['K']).read(), os.environ['U'], os.environ['K'])"
    plain = runwrap(vault, "run", "--domain", "db.internal", "--file", "K=password", "--env", "U=username",
                    "--no-mask", "--", sys.executable, "-c", show)
    assert plain.returncode == 0, plain.stderr
    value, user, path = plain.stdout.split()
    assert (value, user) == (PASSWORD, USER) and path.startswith("/dev/fd/")
    masked = runwrap(vault, "run", "--id", "db-1", "--file", "K=password", "--", "sh", "-c", 'cat "$K"')
    assert (masked.returncode, masked.stdout) == (0, "***"), masked.stderr


@pytest.mark.parametrize(("flags", "expected"), [
    (["--file", "K"], '--file "K" has no field'),
    (["--file", "1K=password"], '"1K" is not a valid variable name'),
    (["--file", "K=pass word"], '"pass word" is not a field name'),
    (["--file", "K=password", "--env", "K=username"], "K is already given"),
    (["--file", "AAC_PASSWORD=notes", "--env-all"], "AAC_PASSWORD is already given"),
])
def test_run_file_refuses_a_bad_flag_before_anything_is_fetched(vault, flags, expected):
    before = len(requests(vault))
    result = runwrap(vault, "run", "--domain", "db.internal", *flags, "--", "true")
    assert result.returncode == 125 and expected in result.stderr, result.stderr
    assert len(requests(vault)) == before


def test_a_path_file_is_in_a_private_tmpfs_folder_others_can_open_and_gone_at_the_end(vault, tmp_path):
    proc = subprocess.Popen([runwrap_executable(), profile(tmp_path, SHARED), "--", sys.executable, "-c", WAIT],
                            env=vault.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        _, path = proc.stdout.readline().split()
        folder = os.path.dirname(path)
        assert folder.startswith("/dev/shm/runwrap-files-")
        assert os.stat(folder).st_mode & 0o777 == 0o700 and os.stat(path).st_mode & 0o777 == 0o400
        with open("/proc/self/mounts") as mounts:
            assert "/dev/shm tmpfs" in mounts.read()
        with open(path) as other_process:  # not a descendant of the child: it needs the path
            assert other_process.read() == PASSWORD
        proc.stdin.write("done\n")
        proc.stdin.flush()
        assert proc.wait(30) == 0, proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
    assert not os.path.exists(folder)


def test_the_path_folder_is_removed_after_kill_9_of_the_child(vault, tmp_path):
    proc = subprocess.Popen([runwrap_executable(), profile(tmp_path, SHARED), "--", sys.executable, "-c", WAIT],
                            env=vault.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        pid, path = proc.stdout.readline().split()
        assert os.path.exists(path)
        os.kill(int(pid), signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL  # runwrap dies by the child's signal
    finally:
        proc.kill()
        proc.wait()
    assert not os.path.exists(os.path.dirname(path))


def test_a_folder_left_by_a_killed_runwrap_is_removed_by_the_next_run(vault, tmp_path):
    proc = subprocess.Popen([runwrap_executable(), profile(tmp_path, SHARED), "--", sys.executable, "-c", WAIT],
                            env=vault.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    child = 0
    try:
        child_pid, path = proc.stdout.readline().split()
        child = int(child_pid)
        proc.kill()  # SIGKILL to runwrap itself: nothing of it runs to clean up
        proc.wait()
    finally:
        if child:
            os.kill(child, signal.SIGKILL)
    left = os.path.dirname(path)
    assert os.path.exists(left)
    again = runwrap(vault, profile(tmp_path, SHARED), "--", "true")
    assert again.returncode == 0, again.stderr
    assert not os.path.exists(left)
    assert not {f for f in memory_folders() if f"-{proc.pid}-" in f}


def test_without_a_memory_file_system_path_true_is_refused_before_fetching(vault, tmp_path):
    disk = tmp_path / "not-tmpfs"
    disk.mkdir()
    before = len(requests(vault))
    script = f'mount --bind "{disk}" /dev/shm && exec "$@"'
    env = {k: v for k, v in vault.env.items() if k != "XDG_RUNTIME_DIR"}
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                             runwrap_executable(), profile(tmp_path, SHARED), "--", "true"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 125, result.stderr
    assert "needs a memory file system" in result.stderr and "/dev/shm is tmpfs" in result.stderr
    assert list(disk.iterdir()) == []
    assert len(requests(vault)) == before


def test_an_xdg_runtime_dir_that_is_not_tmpfs_falls_back_to_dev_shm(vault, tmp_path):
    show = "import os; print(os.environ['SHARED'])"
    result = runwrap(vault, profile(tmp_path, SHARED), "--", sys.executable, "-c", show,
                     env={"XDG_RUNTIME_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("/dev/shm/runwrap-files-") and list(tmp_path.glob("runwrap-*")) == []


def test_client_env_refuses_a_profile_with_files(vault, tmp_path):
    before = len(requests(vault))
    with vault.client() as client, pytest.raises(UsageError, match="has files:, which only"):
        client.env(profile(tmp_path, PGPASS))
    assert len(requests(vault)) == before




GRANDCHILD = """
import os, signal, sys
def read_them(*_):
    sizes = [len(open(os.environ[var], "rb").read()) for var in ("NOTE", "SHARED")]
    with open(sys.argv[2] + ".tmp", "w") as out:
        out.write(" ".join(map(str, sizes)))
    os.rename(sys.argv[2] + ".tmp", sys.argv[2])
    os._exit(0)
signal.signal(signal.SIGTERM, read_them)
open(sys.argv[1], "w").close()
while True:
    signal.pause()
"""

# Starts GRANDCHILD in the background, waits until it has its handler, and exits.
STARTER = """
import os, subprocess, sys, time
subprocess.Popen([sys.executable, "-c", sys.argv[1], *sys.argv[2:]], close_fds=False)  # keep /dev/fd/N
deadline = time.monotonic() + 20
while not os.path.exists(sys.argv[2]) and time.monotonic() < deadline:
    time.sleep(0.01)
"""


def test_a_descendant_reads_its_files_until_the_tree_has_ended(vault, tmp_path):
    # The child exits at once; its grandchild reads both files only when runwrap, ending the tree,
    # sends it SIGTERM. The files are zeroed and removed after that, not when the child ends.
    text = PGPASS.replace("NOTE: {field: notes}", "NOTE: {field: notes}\n      SHARED: {field: password, path: true}")
    ready, out = tmp_path / "ready", tmp_path / "sizes"
    result = runwrap(vault, profile(tmp_path, text), "--", sys.executable, "-c", STARTER, GRANDCHILD, str(ready),
                     str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_text().split() == [str(len(NOTES)), str(len(PASSWORD))]


def test_the_exec_path_with_files_loads_nothing_it_does_not_need(vault, tmp_path):
    from tests.integration.test_end_to_end import EXEC_PATH_MAY_IMPORT

    path = profile(tmp_path, PGPASS.replace("NOTE: {field: notes}", "NOTE: {field: notes, path: true}"))
    env = {"PYTHONPROFILEIMPORTTIME": "1"}
    deadline = time.monotonic() + 20  # the parsed profile is cached once the file is 2 s old
    while True:
        result = runwrap(vault, path, "--", "true", env=env)
        assert result.returncode == 0, result.stderr
        imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()
                    if line.startswith("import time:")}
        if "yaml" not in imported or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    floor = {line.rsplit("|", 1)[-1].strip() for line in subprocess.run(
        [sys.executable, "-c", "pass"], env={**os.environ, **env}, capture_output=True, text=True, check=True,
    ).stderr.splitlines() if line.startswith("import time:")}
    assert {"runwrap.supervise.memfile", "runwrap.profile.files"} <= imported
    # memfile too: the common run does without it (fileset loads it with the first file)
    assert sorted(imported - floor - EXEC_PATH_MAY_IMPORT - {"runwrap.supervise.memfile"}) == []
