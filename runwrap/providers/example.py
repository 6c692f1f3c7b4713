"""The built-in example vault: three fixed items, for trying runwrap and for tests (see SPEC)."""

from __future__ import annotations

from runwrap.credential import Item, Query
from runwrap.providers.base import Provider, choose
from runwrap.secret import Secret

# domain, credential_id, username, password, TOTP seed — exactly the SPEC's table.
DATA: tuple[tuple[str, str, str, str, str | None], ...] = (
    ("github.com", "8b4c5e0a-0000-4000-8000-000000000001", "example", "alligator5", None),
    ("example.com", "8b4c5e0a-0000-4000-8000-000000000002", "demo", "correct-horse-battery-staple", None),
    ("test.com", "8b4c5e0a-0000-4000-8000-000000000003", "tester", "hunter2-but-longer", "JBSWY3DPEHPK3PXP"),
)


class ExampleProvider(Provider):
    """Always usable; holds no real secrets."""

    name = "example"
    lookup_blocks = False  # a table in memory: the listener asks it on its loop (runwrap.listener.sessions)

    def lookup(self, query: Query) -> Item:
        domain, credential_id, username, password, seed = choose(
            query, DATA, id_of=lambda row: row[1], hosts_of=lambda row: [row[0]], source="example"
        )
        # A fresh item every time: the listener wipes what it was given.
        return Item(
            credential_id=credential_id,
            domain=domain,
            username=username,
            password=Secret(password),
            totp_secret=Secret(seed) if seed else None,
            uri=f"https://{domain}",
        )
