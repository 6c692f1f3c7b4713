"""Rotation with the keepass provider: a real KDBX 4 file, a real `runwrap listen --provider keepass
--watch-interval 1s` whose master password is in its environment (password_env), the file saved again
by pykeepass as KeePassXC would, and a raw watching consumer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pykeepass import PyKeePass, create_database

from runwrap.credential import Query
from runwrap.testing.listener import RunningListener
from tests.helpers.watching import Watching
from tests.providers.test_keepass_provider import MASTER, cheap_kdf

INTERVAL = 1.0


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "vault.kdbx"
    kp = create_database(str(path), password=MASTER)
    kp.add_entry(kp.root_group, "GitHub", "alice", "pw-1", url="https://github.com/login")
    cheap_kdf(kp)
    kp.save()
    return path


@pytest.fixture
def listener(database: Path) -> Iterator[RunningListener]:
    with RunningListener("keepass", args=["--watch-interval", f"{INTERVAL:g}s"],
                         provider_options={"database": str(database), "password_env": "RW_TEST_KP"},
                         extra_env={"RW_TEST_KP": MASTER}) as running:
        running.pair()
        yield running


def save(database: Path, password: str) -> None:
    kp = PyKeePass(str(database), password=MASTER)
    kp.find_entries(title="GitHub", first=True).password = password
    kp.save()


def test_a_saved_database_is_read_again_and_the_change_pushed(listener: RunningListener, database: Path) -> None:
    with Watching(listener.home, [(Query(domain="github.com"), ["username", "password"])]) as watching:
        assert watching.value(0, "password") == "pw-1"
        save(database, "pw-1")  # saved again, nothing changed
        assert watching.next(INTERVAL * 2.5) is None
        save(database, "pw-2")
        pushed = watching.next(INTERVAL + 2)
        assert pushed is not None and pushed.kind == "changed", pushed and pushed.header
        assert pushed.values == {"0/username": "alice", "0/password": "pw-2"}
