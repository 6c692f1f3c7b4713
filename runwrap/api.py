"""The public API: `from runwrap import Client` (docs/api.md).

`runwrap connect` goes through `Client`, and `Client.env` runs the exec path's own pipeline
(`runwrap.run`: profile -> request -> fetch -> environment), so programs that embed runwrap get
exactly the lookups, pairing and errors the command line has: the connection is picked the same way
(`Endpoint.pick`), the same Noise session carries the requests, and failures are the same
`RunwrapError`s with the same `exit_status` and `connect_status`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TypeVar

from runwrap.consumer.client import CONNECT_TIMEOUT, Channel, Endpoint, default_provenance
from runwrap.credential import FIELDS, Credential, Query, is_field_name
from runwrap.errors import ConnectionFailed, Denied, NotFound, ProviderError, RateLimited, UsageError
from runwrap.paths import layout
from runwrap.secret import Secret

__all__ = ["Client"]

T = TypeVar("T")

# Answers the listener gave on a healthy session; any other failure leaves the session in an unknown
# state (half a frame read, a closed socket), so it is dropped and the next request opens a new one.
_SESSION_SURVIVES = (NotFound, Denied, RateLimited, ProviderError)


class Client:
    """Ask a paired listener for credentials, as `runwrap connect` does.

    `connection` names a paired listener (`runwrap connections list`); `None` picks the only one, or
    the default, exactly as the CLI does. `home` stands for `RUNWRAP_HOME` (tests use it). Raises
    `ConfigError` at once if this consumer is not paired. The session is opened on the first request,
    reused for later ones, and reopened when the listener has closed it (it closes idle sessions after
    a minute, and a restarted listener has forgotten them). `close()`, or leaving a `with` block,
    closes it. A `Client` is for one thread at a time.
    """

    def __init__(self, connection: str | None = None, *, home: str | os.PathLike[str] | None = None,
                 timeout: float = CONNECT_TIMEOUT) -> None:
        self._home = None if home is None else os.fspath(home)
        environ = dict(os.environ) if self._home is None else {**os.environ, "RUNWRAP_HOME": self._home}
        self.layout = layout(environ)
        self._named = connection
        self._endpoint = Endpoint.pick(self.layout, connection)
        self.connection = self._endpoint.connection
        self.timeout = timeout
        self._channel: Channel | None = None

    def open(self) -> Channel:
        """The session, opened on first use and reused for later requests."""
        if self._channel is None:
            self._channel = self._endpoint.open(self.timeout)
        return self._channel

    def credential(self, domain: str | None = None, id: str | None = None, *,
                   fields: Iterable[str] = FIELDS, provenance: Mapping[str, str | int] | None = None) -> Credential:
        """One item's `fields` (default: all of them) as a `Credential` of `Secret`s.

        Name exactly one of `domain` (the item whose host is that domain or a parent of it) or `id`.
        A field the item does not have is absent from the mapping (`"totp" in cred`); as an attribute
        it reads as an empty `Secret`. Use it in a `with` block, or call `wipe()`, when done.
        """
        try:
            query = Query(domain=domain, id=id)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        wanted = [fields] if isinstance(fields, str) else list(fields)
        unknown = sorted(f for f in wanted if not is_field_name(f))
        if unknown or not wanted:
            raise UsageError(f"fields are names such as {', '.join(FIELDS)} or an item's own key (api_key); "
                             f"not {', '.join(map(repr, unknown)) or 'none'}")
        claim = dict(provenance) if provenance is not None else self._provenance()
        return self._on_session(lambda channel: channel.request(query, wanted, claim))

    def env(self, profile: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
            ) -> dict[str, str | Secret]:
        """The exact environment `runwrap PROFILE -- cmd` would give its child.

        `profile` is a name or a path, found as the CLI finds it; `environ` is the parent environment
        the allow-list picks from (default `os.environ`). Values from the profile's credentials are
        `Secret`s, the rest `str`; wipe the `Secret`s once the child has started. The profile's
        `connection:` is used unless this client was given one by name, as `--connection` wins on
        the command line.
        """
        from runwrap.profile import lookup
        from runwrap.run import Request, claim_for, fetch_env

        parent = dict(os.environ if environ is None else environ)
        prof = lookup.find(os.fspath(profile), environ=parent, cwd=Path.cwd())
        request = Request.of_profile(prof)
        claim = claim_for(self._argv0() or "", request)
        if prof.connection and self._named is None and prof.connection != self.connection.name:
            with Client(prof.connection, home=self._home, timeout=self.timeout) as other:
                env, _ = other._on_session(lambda channel: fetch_env(channel, request, parent, claim))
        else:
            env, _ = self._on_session(lambda channel: fetch_env(channel, request, parent, claim))
        return env

    def close(self) -> None:
        """Close the session; the client opens a new one if asked again."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(connection={self.connection.name!r}, address={self.connection.address!r})"

    def _on_session(self, ask: Callable[[Channel], T]) -> T:
        """Run `ask` on the session; a kept session the listener has since closed is replaced once."""
        reused = self._channel is not None
        try:
            return ask(self.open())
        except _SESSION_SURVIVES:
            raise
        except ConnectionFailed:
            self.close()
            if not reused:
                raise
        except BaseException:
            self.close()
            raise
        try:
            return ask(self.open())
        except _SESSION_SURVIVES:
            raise
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _argv0() -> str | None:
        return sys.argv[0] if sys.argv and sys.argv[0] else None

    def _provenance(self) -> dict[str, str | int]:
        # What the audit log and approval prompts show: the embedding program's name, pid and folder.
        return default_provenance(self._argv0())
