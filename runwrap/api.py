"""The public API: `from runwrap import Client`.

The CLI's `connect`, `run` and `PROFILE -- cmd` go through `Client`, so programs that embed runwrap
get exactly the lookups, pairing and errors the command line has.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from runwrap.client import CONNECT_TIMEOUT, Channel, default_provenance, fetch_profile
from runwrap.credential import FIELDS, Credential, Query
from runwrap.errors import RunwrapError
from runwrap.paths import layout, private_dir
from runwrap.secret import Secret
from runwrap.store import Connections, load_or_create_identity


class Client:
    """Ask a paired listener for credentials.

    >>> with Client() as client:                                  # doctest: +SKIP
    ...     with client.credential(domain="github.com") as cred:
    ...         token = cred.password.reveal()
    """

    def __init__(self, connection: str | None = None, *, home: str | os.PathLike[str] | None = None,
                 timeout: float = CONNECT_TIMEOUT) -> None:
        env = dict(os.environ)
        if home is not None:
            env["RUNWRAP_HOME"] = os.fspath(home)
        self.layout = layout(env)
        self.connection = Connections(self.layout.connections).pick(connection)
        self.timeout = timeout
        private_dir(self.layout.config)
        self._private = load_or_create_identity(self.layout.consumer_key)
        self._channel: Channel | None = None

    def open(self) -> Channel:
        """The session, opened on first use and reused for later requests."""
        if self._channel is None:
            self._channel = Channel.open(self.connection, self._private, self.timeout)
        return self._channel

    def credential(self, domain: str | None = None, id: str | None = None, *,
                   fields: Iterable[str] = FIELDS, provenance: Mapping[str, Any] | None = None) -> Credential:
        try:
            query = Query(domain=domain, id=id)
        except ValueError as exc:
            raise RunwrapError(str(exc)) from None
        return self.open().request(query, fields, provenance or default_provenance())

    def env(self, profile: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
            ) -> dict[str, str | Secret]:
        """The environment `profile` would give a child: allow-list, `env.set`, credentials."""
        from runwrap import environment, profiles

        parent = dict(os.environ if environ is None else environ)
        prof = profiles.find(os.fspath(profile), environ=parent, cwd=Path.cwd())
        injected = fetch_profile(self.open(), prof, default_provenance(profile=prof.name))
        return environment.build(parent, prof.inherit, prof.set, injected)

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(connection={self.connection.name!r}, address={self.connection.address!r})"
