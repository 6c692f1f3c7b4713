"""runwrap's cache folder, and the exec path's modules compiled into one file there.

Importing a module from its .pyc costs ~0.2 ms of import machinery (finders, stats, the loader's
checks) before its code runs, and `runwrap PROFILE -- cmd` loads ~40 of runwrap's: the largest part
of runwrap's own start (issue 17). So a launch that finds no usable bundle imports as usual, noting
each runwrap module's code object and when its import finished, and writes them at exit; the next
launch runs those code objects, in that order, into fresh modules (skipping any already imported),
from one read. Modules the bundle lacks still import the usual way, and are added at that run's end.
A module off the common launch (the YAML reader, which a cached profile never needs) says so with
`OFF_THE_LAUNCH_PATH = True`, and a run that imports one adds nothing: the bundle runs every module
it holds on every launch.

The bundle is kept like a parsed profile (runwrap.profile.cache): in a private folder of runwrap's
cache (0700, the file 0600 and ours, opened without following symlinks); keyed on the interpreter's
bytecode version, its optimisation level and the package's folder, and on each source file's inode,
size, mtime and ctime, so an edit, an upgrade or a reinstall is a miss; and written only when every
source's last change is 2 s old (a later change must then move its ctime). Best effort: any problem
is a miss, never an error. It holds code, never a secret.
"""

from __future__ import annotations

import marshal
import os
import stat
import sys
import time

TYPE_CHECKING = False  # not typing's: this module starts every `runwrap PROFILE -- cmd`
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from importlib.machinery import ModuleSpec, PathFinder, SourceFileLoader
    from importlib.util import MAGIC_NUMBER
    from types import CodeType, ModuleType

    # (module name, source path, is a package, the source's key, its code, late), in the order imports
    # finished; `late`: first imported after `resume()`, so run there
    Entry = tuple[str, str, bool, list[int], CodeType, bool]

else:  # the import system's own classes (what importlib.machinery re-exports), loaded at startup already
    ModuleSpec = sys.modules["_frozen_importlib"].ModuleSpec
    _external = sys.modules["_frozen_importlib_external"]
    PathFinder, SourceFileLoader = _external.PathFinder, _external.SourceFileLoader
    MAGIC_NUMBER = getattr(_external, "MAGIC_NUMBER", None)  # None (a newer Python moved it): no bundle

_FORMAT = 2  # 2: entries say whether they run late
_SETTLE_NS = 2_000_000_000  # a source is bundled only once its last change is this old
MAX_BUNDLE_BYTES = 16 * 1024 * 1024
PACKAGE = "runwrap"
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def cache_root(environ: Mapping[str, str]) -> str | None:
    """runwrap's cache folder: $RUNWRAP_HOME/cache, else $XDG_CACHE_HOME/runwrap, else ~/.cache/runwrap."""
    if environ.get("RUNWRAP_HOME"):
        return os.path.join(environ["RUNWRAP_HOME"], "cache")
    xdg = environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):
        return os.path.join(xdg, "runwrap")
    if environ.get("HOME"):
        return os.path.join(environ["HOME"], ".cache", "runwrap")
    return None


def private_dir(folder: str) -> bool:
    """`folder` is a real folder (not a symlink), ours, and closed to group and others."""
    try:
        info = os.lstat(folder)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and info.st_mode & 0o077 == 0


def make_private_dirs(folder: str) -> None:
    """mkdir -p, every folder it creates 0700 (SPEC, Files); folders already there are left as they are."""
    missing = []
    while not os.path.exists(folder) and folder != os.path.dirname(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    for item in reversed(missing):
        try:
            os.mkdir(item, 0o700)
        except FileExistsError:
            pass


def source_key(path: str) -> list[int]:
    info = os.stat(path)
    return [info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]


def _header(package_dir: str) -> list[object]:
    return [_FORMAT, MAGIC_NUMBER, sys.flags.optimize, package_dir]


def bundle_path(environ: Mapping[str, str], package_dir: str = PACKAGE_DIR) -> str | None:
    """One bundle per installed copy and interpreter, so installs sharing a home keep their own."""
    root = cache_root(environ)
    if root is None:
        return None
    from _blake2 import blake2s  # the exec path loads it anyway, for Noise

    tag = blake2s(f"{package_dir}\0{sys.implementation.cache_tag}\0{sys.flags.optimize}".encode(),
                  digest_size=8).hexdigest()
    return os.path.join(root, "code", f"{tag}.bin")


def read_private(path: str, limit: int) -> bytes | None:
    """The bytes of the file at `path` if it and its folder are ours and private, it is no symlink and
    holds at most `limit` bytes; else None. How runwrap reads its caches."""
    if not private_dir(os.path.dirname(path)):
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as file:
            info = os.fstat(file.fileno())
            if info.st_uid != os.getuid() or info.st_mode & 0o077:
                return None
            data = file.read(limit + 1)
    except OSError:
        return None
    return data if len(data) <= limit else None


def write_private(path: str, make: Callable[[], bytes]) -> None:
    """`make()`'s bytes as the file `path`, 0600 in a private folder (made 0700 if missing), replaced
    atomically. Best effort, as runwrap writes its caches: a full disk or a folder that is not ours
    and private leaves things as they were."""
    folder = os.path.dirname(path)
    temp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        make_private_dirs(folder)
        if not private_dir(folder):
            return
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(make())
        os.replace(temp, path)
    except (OSError, ValueError):  # ValueError: what marshal says of an object it cannot write
        try:
            os.unlink(temp)
        except OSError:
            pass


def read(path: str, package_dir: str = PACKAGE_DIR) -> list[Entry] | None:
    """The bundle at `path` if it is ours, private, for this interpreter and every source unchanged."""
    data = read_private(path, MAX_BUNDLE_BYTES)
    if data is None:
        return None
    try:
        header, entries = marshal.loads(data)  # noqa: S302 - our own private file, checked above
        if header != _header(package_dir):
            return None
        checked: list[Entry] = entries
        for _name, source, _is_package, key, _code, _late in checked:
            if source_key(source) != key:
                return None
        return checked
    except (OSError, ValueError, EOFError, TypeError):  # marshal's errors, and a bundle of the wrong shape
        return None


def run(entries: list[Entry]) -> None:
    """Each bundled module's code into a fresh module, as its import would have; ones loaded already are kept."""
    modules = sys.modules
    module_type = type(sys)
    for name, source, is_package, _key, code, _late in entries:
        if name in modules:
            continue
        parent, _, child = name.rpartition(".")
        if parent not in modules:  # as the import system does, parent first (runwrap itself is never bundled)
            __import__(parent)
            if name in modules:  # the parent's own import imported it
                continue
        # The attributes the import system gives a module from a source file (importlib's
        # module_from_spec, by hand: ~3x cheaper), but __cached__, which names a .pyc not used.
        loader = SourceFileLoader(name, source)
        spec = ModuleSpec(name, loader, origin=source, is_package=is_package)
        spec.has_location = True
        module = module_type(name)
        attributes = module.__dict__
        attributes["__spec__"] = spec
        attributes["__loader__"] = loader
        attributes["__file__"] = source
        if is_package:
            spec.submodule_search_locations = attributes["__path__"] = [os.path.dirname(source)]
            attributes["__package__"] = name
        else:
            attributes["__package__"] = parent
        modules[name] = module
        try:
            exec(code, attributes)  # noqa: S102 - runwrap's own code, as its import would run it
        except BaseException:
            modules.pop(name, None)
            raise
        setattr(modules[parent], child, modules[name])


class _RecordingLoader(SourceFileLoader):
    """The usual loader for a source file; it also hands each module's code to the Recorder."""

    def __init__(self, fullname: str, path: str, recorder: Recorder) -> None:
        super().__init__(fullname, path)
        self.recorder = recorder
        self.noted: tuple[list[int] | None, CodeType | None] = (None, None)  # get_code's key and code

    def get_code(self, fullname: str) -> CodeType | None:
        try:
            before = source_key(self.path)
        except OSError:
            before = None
        code = super().get_code(fullname)
        self.noted = (before, code)
        return code

    def exec_module(self, module: ModuleType) -> None:
        super().exec_module(module)
        before, code = self.noted
        try:
            unchanged = before == source_key(self.path)  # the code read is the source keyed
        except OSError:
            unchanged = False
        self.recorder.finished(module, before if unchanged else None, code)


class Recorder:
    """A meta-path finder that notes every module of `package` imported from its folder, in finish order."""

    def __init__(self, path: str, bundled: list[Entry] = (), package: str = PACKAGE,  # type: ignore[assignment]
                 package_dir: str = PACKAGE_DIR) -> None:
        self.path = path  # where `write` puts the bundle
        self.bundled = list(bundled)  # what the bundle at `path` holds already
        self.names = {entry[0] for entry in self.bundled}  # imported the usual way when asked early, not noted
        self.prefix = package + "."
        self.package_dir = package_dir
        self.entries: list[Entry] = []
        self.complete = True  # False once a module could not be keyed: such a bundle would be wrong
        self.usual = True  # False once a module off the launch path is imported: learn nothing from this run
        self.late = False  # True once the launch reached `resume()`

    def find_spec(self, name: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if not name.startswith(self.prefix) or name in self.names:
            return None
        spec = PathFinder.find_spec(name, path, target)
        if (spec is not None and spec.origin is not None and type(spec.loader) is SourceFileLoader
                and (os.path.dirname(spec.origin) + os.sep).startswith(self.package_dir + os.sep)):
            spec.loader = _RecordingLoader(name, spec.origin, self)
        return spec

    def finished(self, module: ModuleType, key: list[int] | None, code: CodeType | None) -> None:
        if module.__dict__.get("OFF_THE_LAUNCH_PATH"):
            self.usual = False
        if key is None:
            self.complete = False
            return
        spec = module.__spec__
        if spec is None or spec.origin is None or code is None:
            self.complete = False
            return
        self.entries.append((module.__name__, spec.origin, spec.submodule_search_locations is not None, key, code,
                             self.late))

    def start(self) -> Recorder:
        sys.meta_path.insert(0, self)
        return self

    def stop(self) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)

    def write(self) -> None:
        """The bundle and the modules noted since, at `self.path`; not if one was unkeyed or changed too lately."""
        self.stop()
        if not (self.complete and self.usual and self.entries):
            return
        settled = time.time_ns() - _SETTLE_NS
        if any(entry[3][3] >= settled or entry[3][2] >= settled for entry in self.entries):
            return
        # made once the file is open: a home it cannot write costs a launch no marshalling
        write_private(self.path, lambda: marshal.dumps([_header(self.package_dir), self.bundled + self.entries]))


# The launch's bundle between `load` and `resume`: the part to run late, and what notes new modules.
_late: list[Entry] = []
_recorder: list[Recorder] = []


def load(environ: Mapping[str, str]) -> Recorder | None:
    """Run the exec path's bundle if there is a usable one, and start noting what else gets imported.

    The part a recording run imported after `resume()` is kept for `resume()`. The Recorder's
    `write` at exit adds the modules the bundle lacked (all of them when there was none, or it was
    stale); `stop` forgets them.
    """
    path = bundle_path(environ)
    if path is None or MAGIC_NUMBER is None:
        return None
    entries = read(path) or []
    run([entry for entry in entries if not entry[5]])
    _late[:] = [entry for entry in entries if entry[5]]
    recorder = Recorder(path, entries).start()
    _recorder[:] = [recorder]
    return recorder


def resume() -> None:
    """The launch waits on the listener here: run the bundle's late part (the supervisor's modules)
    now, while the listener works, rather than before connecting; a recording run notes what it
    imports from here as late."""
    late, _late[:] = list(_late), []
    run(late)
    for recorder in _recorder:
        recorder.late = True
