"""Fixtures for the OpenBao provider's tests: one dev server for the session, PostgreSQL when asked for.

The data below is written with the root token; every provider under test gets a least-privilege
token (`listener_token`) or an AppRole, never the root token.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runwrap.providers.openbao import OpenBaoProvider

from .bao_kit import BaoServer, Postgres, seeded_server, setup_database_engine, write_secret_file


@pytest.fixture(scope="session")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BaoServer]:
    with seeded_server(tmp_path_factory.mktemp("bao")) as server:
        yield server


@pytest.fixture(scope="session")
def listener_token(bao: BaoServer) -> str:
    return bao.grant()


@pytest.fixture
def token_file(tmp_path: Path, listener_token: str) -> Path:
    return write_secret_file(tmp_path / "token", listener_token)


@pytest.fixture
def make_provider(bao: BaoServer, token_file: Path) -> Iterator[Callable[..., OpenBaoProvider]]:
    """Providers on the session's server (the listener's token unless options say otherwise), closed after."""
    made: list[OpenBaoProvider] = []

    def make(**options: str) -> OpenBaoProvider:
        if not {"token_file", "role_id_file"} & set(options):
            options["token_file"] = str(token_file)
        provider = OpenBaoProvider({"address": bao.address, **options})
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    pg = Postgres().start()
    try:
        yield pg
    finally:
        pg.stop()


@pytest.fixture(scope="session")
def database(bao: BaoServer, postgres: Postgres) -> Postgres:
    """The session's server with its database engine on `postgres` (roles `app` and `short`)."""
    setup_database_engine(bao, postgres)
    return postgres
