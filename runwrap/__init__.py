"""runwrap: run a command with exactly the secrets it needs.

`from runwrap import Client` asks a paired listener for credentials; see docs/api.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Client", "Credential", "RunwrapError", "Secret", "__version__"]

if TYPE_CHECKING:
    from runwrap.api import Client
    from runwrap.credential import Credential
    from runwrap.errors import RunwrapError
    from runwrap.secret import Secret


def __getattr__(name: str) -> Any:
    # Lazy, so `import runwrap` stays cheap on the exec path.
    if name == "Client":
        from runwrap.api import Client

        return Client
    if name == "Credential":
        from runwrap.credential import Credential

        return Credential
    if name == "RunwrapError":
        from runwrap.errors import RunwrapError

        return RunwrapError
    if name == "Secret":
        from runwrap.secret import Secret

        return Secret
    raise AttributeError(name)
