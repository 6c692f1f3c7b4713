"""Where runwrap keeps its files, and how it writes them (0700 folders, 0600 files, atomically).

With `RUNWRAP_HOME` set, everything lives under it (tests set it). Otherwise keys, connections and
peers live under `$XDG_CONFIG_HOME/runwrap`, the audit log under `$XDG_STATE_HOME/runwrap`, and the
socket under `$XDG_RUNTIME_DIR/runwrap` (or a 0700 folder of the user's in the temp dir).
Folders runwrap creates are 0700; a folder that exists is used as it is, or refused if others could
change what is in it (folder_for_files), never chmodded.
"""

from __future__ import annotations

import os
import stat

from runwrap import json_codec
from runwrap.errors import ConfigError
from runwrap.record import FrozenRecord

TYPE_CHECKING = False  # not typing's: the exec path imports this module
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path
    from typing import Any, TypeVar

    # Only for mypy: at run time a TypeVar's string bound is compiled (~1.5 ms).
    _P = TypeVar("_P", bound="str | os.PathLike[str]")

# The exec path takes its two files (`config_dir`) as strings: pathlib costs ~2.5 ms of imports.
CONSUMER_KEY = "consumer.key"
CONNECTIONS = "connections.json"


class Layout(FrozenRecord):
    """Where runwrap's files go: keys and lists (config), the audit log (state), the socket (runtime)."""

    __slots__ = ("config", "runtime", "state")
    config: Path
    state: Path
    runtime: Path

    def __init__(self, config: Path, state: Path, runtime: Path) -> None:
        self._init(config=config, state=state, runtime=runtime)

    @property
    def listener_key(self) -> Path:
        return self.config / "listener.key"

    @property
    def consumer_key(self) -> Path:
        return self.config / CONSUMER_KEY

    @property
    def peers(self) -> Path:
        return self.config / "peers.json"

    @property
    def connections(self) -> Path:
        return self.config / CONNECTIONS

    @property
    def audit_log(self) -> Path:
        return self.state / "audit.log"

    @property
    def socket(self) -> Path:
        return self.runtime / "listener.sock"

    def folders(self) -> tuple[Path, ...]:
        return tuple(dict.fromkeys((self.config, self.state, self.runtime)))


def config_dir(environ: Mapping[str, str] | None = None) -> str:
    """`layout(environ).config` as a string, without pathlib: the folder of keys and connections."""
    env = os.environ if environ is None else environ
    home = env.get("RUNWRAP_HOME")
    if home:
        return home
    user_home = env.get("HOME") or os.path.expanduser("~")
    return os.path.join(env.get("XDG_CONFIG_HOME") or os.path.join(user_home, ".config"), "runwrap")


def layout(environ: Mapping[str, str] | None = None) -> Layout:
    from pathlib import Path

    env = os.environ if environ is None else environ
    home = env.get("RUNWRAP_HOME")
    if home:
        root = Path(home)
        return Layout(root, root, root)
    user_home = Path(env.get("HOME") or os.path.expanduser("~"))
    config = Path(config_dir(env))
    state = Path(env.get("XDG_STATE_HOME") or user_home / ".local" / "state") / "runwrap"
    runtime_base = env.get("XDG_RUNTIME_DIR")
    if runtime_base:
        runtime = Path(runtime_base) / "runwrap"
    else:
        import tempfile  # here: it pulls in shutil, random and compressors; the exec path rarely needs it

        runtime = runtime_in_tmp(Path(tempfile.gettempdir()), os.getuid())
    return Layout(config, state, runtime)


MAX_TMP_TRIES = 100


def runtime_in_tmp(tmp: Path, uid: int) -> Path:
    """The user's runtime folder in the shared temp dir: `runwrap-UID`, unless someone else made that
    name first (another user's folder, a file, a link); then the first of `runwrap-UID-1`, `-2`, ...
    that is free or a folder of ours. Listener and consumers pick the same one, since the choice
    depends only on what is in the temp dir, so a squatter cannot keep the listener from starting."""
    for n in range(MAX_TMP_TRIES):
        candidate = tmp / (f"runwrap-{uid}" if n == 0 else f"runwrap-{uid}-{n}")
        try:
            info = os.lstat(candidate)
        except FileNotFoundError:
            return candidate
        except OSError:
            continue
        if stat.S_ISDIR(info.st_mode) and info.st_uid == uid:
            return candidate
    raise ConfigError(f"{tmp} holds {MAX_TMP_TRIES} folders named runwrap-{uid}* of other users; "
                      "set XDG_RUNTIME_DIR (or RUNWRAP_HOME) to a folder of your own")


def _lineage(path: str) -> list[str]:
    """`path`'s parents, outermost first, then `path` (Path.parents in os.path: no pathlib)."""
    chain = [path.rstrip("/") or "/"]
    while (parent := os.path.dirname(chain[-1])) not in ("", chain[-1]):
        chain.append(parent)
    return chain[::-1]


def folder_for_files(path: _P) -> _P:
    """Make sure `path` is a folder that only we can change, for files we keep in it: the one rule
    for every folder runwrap uses (config, state, runtime, the socket's, the audit log's).

    Missing folders (parents included) are created 0700. A folder that exists is never changed, since
    it may be someone else's choice (a sticky /tmp, a 2775 team folder): it is refused, with the reason,
    if another user could remove or replace the files in it.
    """
    named: str | os.PathLike[str] = path  # the bound, for os.fspath's overloads
    for folder in _lineage(os.fspath(named)):
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            continue
        except OSError as exc:
            raise ConfigError(f"cannot create the folder {folder}: {exc.strerror}") from None
        os.chmod(folder, 0o700)  # ours, just made: exactly 0700 whatever the umask took away
    try:
        info = os.stat(path)
    except OSError as exc:
        raise ConfigError(f"cannot use the folder {path}: {exc.strerror}") from None
    mode = stat.S_IMODE(info.st_mode)
    if not stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"{path} is not a folder; move it away or choose another place")
    if info.st_uid not in (os.geteuid(), 0):
        raise ConfigError(f"the folder {path} belongs to uid {info.st_uid}, who could remove or replace "
                          "the files in it; choose a folder of your own")
    if mode & 0o022 and not mode & stat.S_ISVTX:
        raise ConfigError(f"the folder {path} has mode {mode:o}: others can remove or replace the files in "
                          "it; choose a folder only you can write (runwrap leaves existing folders alone)")
    return path


def write_private(path: str | os.PathLike[str], data: bytes, *, exclusive: bool = False) -> bool:
    """Write `data` to `path` atomically (temp file, fsync, rename), mode 0600 from the first byte.

    A reader sees the old file or the new one, never a part. With `exclusive`, an existing file is
    left alone and False comes back (two processes creating the same key: the first one wins).
    """
    import tempfile

    folder, name = os.path.split(os.fspath(path))
    folder_for_files(folder or ".")
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=folder or ".")  # mkstemp creates 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            try:
                os.link(tmp, path)  # fails if the name exists: no window where either file is half-made
            except FileExistsError:
                return False
            finally:
                os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(folder or ".", os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return True


def read_private(path: str | os.PathLike[str]) -> bytes | None:
    """The file's bytes, or None if it does not exist. Refuses a file that others can read or write."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if stat.S_IMODE(info.st_mode) & 0o077:
            raise ConfigError(
                f"{path} has mode {stat.S_IMODE(info.st_mode):o}; run `chmod 600 {path}` (it holds keys)"
            )
        return handle.read()


def read_private_json(path: str | os.PathLike[str], default: dict[str, Any]) -> dict[str, Any]:
    """A private JSON object file (see read_private), or `default` if it does not exist."""
    data = read_private(path)
    if data is None:
        return default
    try:
        loaded = json_codec.loads(data)
    except ValueError:
        raise ConfigError(f"{path} is not valid JSON; fix or remove it") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path} is not a runwrap file; fix or remove it")
    return loaded


def wrong_modes(lay: Layout) -> list[str]:
    """Every runwrap file or folder that others could read or change, as `runwrap doctor` names them.

    Folders should be 0700 and files (keys, peers, connections, the audit log, the socket) 0600, and
    all of them the user's own. Dot-files are the temporary files of atomic writes.
    """
    problems: list[str] = []
    me = os.getuid()

    def check(entry: Path, want: int) -> None:
        info = entry.lstat()
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            problems.append(f"{entry}: mode {mode:o}, should be {want:o} (chmod {want:o} {entry})")
        if info.st_uid != me:
            problems.append(f"{entry}: owned by uid {info.st_uid}, not by you (uid {me})")

    for folder in lay.folders():
        if not folder.exists():
            continue
        check(folder, 0o700)
        for entry in sorted(folder.iterdir()):
            if entry.is_symlink() or entry.name.startswith("."):
                continue
            check(entry, 0o700 if entry.is_dir() else 0o600)
    return problems
