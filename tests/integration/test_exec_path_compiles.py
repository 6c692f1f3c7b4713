"""The exec path compiles no code while it runs: modules come from their files, and nothing calls
compile() on a string (a TypeVar with a string bound does, ~1.5 ms of a launch the first time)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

PROFILE = "credentials:\n  - domain: github.com\n    env:\n      GH_TOKEN: password\n"

# runwrap's own main() under an audit hook that reports every compile() of anything but a module file
# (the command, bin/runwrap, imports nothing before runwrap.__main__).
DRIVER = """
import sys
seen = []
sys.addaudithook(lambda event, args: event == "compile" and not str(args[1]).endswith(".py")
                 and seen.append(str(args[1])))
from runwrap.__main__ import main
status = main(sys.argv[1:])
print("compiled:", seen, flush=True)
sys.exit(status)
"""


def test_nothing_is_compiled_from_a_string(listener, tmp_path: Path) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text(PROFILE)
    # A launch from the parsed-profile cache, as every launch but a profile's first after an edit is
    # (the cache takes a file once its last change is 2 s old; parsing YAML imports re and more).
    time.sleep(2.2)
    listener.run(str(profile), "--", "true")
    result = subprocess.run([sys.executable, "-c", DRIVER, str(profile), "--", "true"], env=listener.env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "compiled: []\n"
