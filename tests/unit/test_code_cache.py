"""runwrap.code_cache on a package of its own, each case in a fresh interpreter (imports are process state)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from runwrap import code_cache

# Each script gets: sys.argv[1] the folder holding package `pkg`, sys.argv[2] the bundle's path.
PRELUDE = """
import json, sys
sys.path.insert(0, sys.argv[1])
from runwrap import code_cache
PKG = sys.argv[1] + "/pkg"
BUNDLE = sys.argv[2]
"""

RECORD = PRELUDE + """
recorder = code_cache.Recorder(BUNDLE, package="pkg", package_dir=PKG).start()
import pkg.app
pkg.app.later()
recorder.write()
print(json.dumps([name for name, *_ in recorder.entries]))
"""

RUN = PRELUDE + """
entries = code_cache.read(BUNDLE, package_dir=PKG)
if entries is None:
    print(json.dumps(None)); raise SystemExit
code_cache.run(entries)  # with pkg not imported yet: run imports it first
import pkg.app
from pkg.sub import deep
print(json.dumps({
    "loaded": sorted(n for n in sys.modules if n.startswith("pkg")),
    "value": pkg.app.VALUE, "later": pkg.app.later(),
    "file": deep.__file__, "origin": deep.__spec__.origin, "package": deep.__package__,
    "sub_path": pkg.sub.__path__, "sub_package": pkg.sub.__package__, "parent_attr": pkg.sub.deep is deep,
    "source": __import__("inspect").getsource(deep).splitlines()[0],
}))
"""

MODULES = {
    "__init__.py": "",
    "base.py": "ORDER = ['base']\n",
    "app.py": """
        from pkg import base
        from pkg.sub import deep
        base.ORDER.append('app')
        VALUE = deep.VALUE + 1

        def later():
            from pkg import lazy  # imported inside a function: still bundled, after app
            return lazy.WORD
    """,
    "lazy.py": "from pkg import base\nbase.ORDER.append('lazy')\nWORD = 'lazy'\n",
    "sub/__init__.py": "",
    "sub/deep.py": "# deep\nfrom pkg import base\nbase.ORDER.append('deep')\nVALUE = 41\n",
}


def _package(root: Path, modules: dict[str, str] = MODULES, age: float = 60.0) -> Path:
    for name, text in modules.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    past = time.time() - age
    for path in (root / "pkg").rglob("*.py"):
        os.utime(path, (past, past))
    return root


def _python(script: str, root: Path, bundle: Path) -> object:
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo), "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run([sys.executable, "-c", script, str(root), str(bundle)], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    folder = tmp_path / "cache" / "code"
    return folder / "b.bin"


def test_recorded_in_the_order_imports_finished_and_run_into_working_modules(tmp_path, bundle):
    root = _package(tmp_path)
    time.sleep(2.1)  # the new files' ctimes must settle before they are bundled
    order = _python(RECORD, root, bundle)
    assert order == ["pkg.base", "pkg.sub", "pkg.sub.deep", "pkg.app", "pkg.lazy"]
    assert (bundle.parent.stat().st_mode & 0o777, bundle.stat().st_mode & 0o777) == (0o700, 0o600)
    ran = _python(RUN, root, bundle)
    assert ran == {
        "loaded": ["pkg", "pkg.app", "pkg.base", "pkg.lazy", "pkg.sub", "pkg.sub.deep"],
        "value": 42, "later": "lazy",
        "file": str(root / "pkg" / "sub" / "deep.py"), "origin": str(root / "pkg" / "sub" / "deep.py"),
        "package": "pkg.sub", "sub_path": [str(root / "pkg" / "sub")], "sub_package": "pkg.sub",
        "parent_attr": True, "source": "# deep",
    }


def test_sources_changed_in_the_last_two_seconds_are_not_bundled(tmp_path, bundle):
    root = _package(tmp_path, age=0.0)
    _python(RECORD, root, bundle)
    assert not bundle.exists()


@pytest.mark.parametrize("change", ["edit", "touch", "delete"])
def test_a_changed_source_makes_the_bundle_stale(tmp_path, bundle, change):
    root = _package(tmp_path)
    time.sleep(2.1)
    _python(RECORD, root, bundle)
    deep = root / "pkg" / "sub" / "deep.py"
    if change == "edit":
        deep.write_text(deep.read_text().replace("41", "40"))  # same size
    elif change == "touch":
        os.utime(deep, (time.time() - 60, deep.stat().st_mtime))  # the ctime moves, the mtime stays
    else:
        deep.unlink()
    assert _python(RUN, root, bundle) is None


def test_a_module_that_fails_to_import_leaves_no_bundle(tmp_path, bundle):
    modules = {**MODULES, "lazy.py": "raise RuntimeError('no')\n"}
    root = _package(tmp_path, modules)
    time.sleep(2.1)
    script = RECORD.replace("pkg.app.later()", "try:\n    pkg.app.later()\nexcept RuntimeError:\n    pass")
    order = _python(script, root, bundle)
    assert "pkg.lazy" not in order  # the bundle holds only what imported whole
    ran = _python(RUN.replace('"later": pkg.app.later(),', ""), root, bundle)
    assert "pkg.lazy" not in ran["loaded"]


def test_a_module_off_the_launch_path_makes_the_run_teach_nothing(tmp_path, bundle):
    modules = {**MODULES, "lazy.py": "OFF_THE_LAUNCH_PATH = True\nWORD = 'lazy'\n"}
    root = _package(tmp_path, modules)
    time.sleep(2.1)
    _python(RECORD, root, bundle)
    assert not bundle.exists()


def test_a_bundle_for_another_package_folder_or_interpreter_is_refused(tmp_path, bundle):
    root = _package(tmp_path)
    time.sleep(2.1)
    _python(RECORD, root, bundle)
    assert code_cache.read(str(bundle), package_dir=str(root / "pkg")) is not None
    assert code_cache.read(str(bundle), package_dir=str(tmp_path / "elsewhere")) is None
    import marshal

    header, entries = marshal.loads(bundle.read_bytes())
    bundle.write_bytes(marshal.dumps([[header[0], b"\0\0\r\n", *header[2:]], entries]))  # another bytecode
    assert code_cache.read(str(bundle), package_dir=str(root / "pkg")) is None


def test_bundle_paths_differ_per_install_and_follow_the_cache_folder():
    one = code_cache.bundle_path({"RUNWRAP_HOME": "/h"}, "/site/a/runwrap")
    two = code_cache.bundle_path({"RUNWRAP_HOME": "/h"}, "/site/b/runwrap")
    assert one != two and one.startswith("/h/cache/code/") and two.startswith("/h/cache/code/")
    assert code_cache.bundle_path({"XDG_CACHE_HOME": "/x"}, "/a").startswith("/x/runwrap/code/")
    assert code_cache.bundle_path({"XDG_CACHE_HOME": "relative", "HOME": "/u"}, "/a").startswith(
        "/u/.cache/runwrap/code/")
    assert code_cache.bundle_path({}, "/a") is None
