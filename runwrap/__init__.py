"""runwrap: run a command with exactly the secrets it needs.

`from runwrap import Client` asks a paired listener for credentials; see docs/api.md. The names
below are imported on first use, so `import runwrap` stays cheap on the exec path (shebang lines,
Makefile recipes).
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: `import runwrap` starts every console script, exec path included

__version__ = "0.1.0"
__all__ = [
    "Client",
    "ConfigError",
    "ConnectionFailed",
    "Credential",
    "Denied",
    "NotFound",
    "RunwrapError",
    "Secret",
    "__version__",
]

if TYPE_CHECKING:
    from typing import Any

    from runwrap.api import Client
    from runwrap.credential import Credential
    from runwrap.errors import ConfigError, ConnectionFailed, Denied, NotFound, RunwrapError
    from runwrap.secret import Secret

_LAZY = {
    "Client": "runwrap.api",
    "Credential": "runwrap.credential",
    "Secret": "runwrap.secret",
    "RunwrapError": "runwrap.errors",
    "ConfigError": "runwrap.errors",
    "ConnectionFailed": "runwrap.errors",
    "Denied": "runwrap.errors",
    "NotFound": "runwrap.errors",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'runwrap' has no attribute {name!r}")
    return getattr(__import__(module, fromlist=[name]), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
