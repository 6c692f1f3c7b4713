"""The registry: built-ins, plugins through real entry points on sys.path, and what `load` refuses."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest

from runwrap.credential import Item, Query
from runwrap.errors import NotFound, ProviderError
from runwrap.providers import available, load
from runwrap.providers.base import Provider, choose
from runwrap.providers.example import ExampleProvider

PLUGINS = '''
from runwrap.providers.base import Provider

class Good(Provider):
    name = "good"

class Unusable(Provider):
    name = "unusable"
    @classmethod
    def unusable_reason(cls):
        return "install the frobnicator (apt-get install frobnicator)"

class Impostor(Provider):
    name = "bitwarden"

NOT_A_PROVIDER = object()
'''

ENTRY_POINTS = """
[runwrap.providers]
good = rw_test_plugins:Good
unusable = rw_test_plugins:Unusable
bitwarden = rw_test_plugins:Impostor
broken = rw_test_plugins_missing:Nothing
notaclass = rw_test_plugins:NOT_A_PROVIDER
"""


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A real installed distribution (dist-info on sys.path) that declares runwrap.providers entry points."""
    (tmp_path / "rw_test_plugins.py").write_text(textwrap.dedent(PLUGINS))
    info = tmp_path / "rw_test_plugins-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rw-test-plugins\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_builtins_are_found_without_plugins() -> None:
    found = available()
    assert {"example", "pass", "command", "keepass", "bitwarden"} <= set(found)
    assert found["example"] is ExampleProvider
    for name, cls in found.items():
        assert cls.name == name


def test_plugins_load_and_broken_ones_are_logged_and_skipped(
    plugins: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="runwrap"):
        found = available()
    assert found["good"].__name__ == "Good"
    # A plugin cannot take a built-in's name.
    assert found["bitwarden"].__module__ == "runwrap.providers.bitwarden"
    assert "broken" not in found and "notaclass" not in found
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "runwrap")
    assert "broken" in logged and "notaclass" in logged and "replace a built-in" in logged


def test_load_names_the_unusable_reason(plugins: Path) -> None:
    with pytest.raises(ProviderError) as caught:
        load("unusable")
    assert "unusable" in str(caught.value) and "apt-get install frobnicator" in str(caught.value)


def test_load_of_an_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ProviderError) as caught:
        load("lastpass")
    message = str(caught.value)
    assert "lastpass" in message and "example" in message and "bitwarden" in message


def test_load_gives_a_ready_instance_and_passes_the_prompt() -> None:
    asked: list[str] = []

    def prompt(text: str) -> str:
        asked.append(text)
        return ""

    provider = load("example", {}, prompt)
    assert isinstance(provider, ExampleProvider) and provider.prompt is prompt
    assert provider.lookup(Query(domain="github.com")).username == "example"


def test_unknown_options_are_refused_with_the_known_ones() -> None:
    with pytest.raises(ProviderError) as caught:
        load("command", {"comand": "/bin/true"})
    assert "comand" in str(caught.value) and "command" in str(caught.value)


# choose(): the one place where a domain meets item hosts.

ITEMS = [
    ("a", ["github.com"]),
    ("b", ["https://api.github.com/v3"]),
    ("c", ["gitlab.com", "https://code.example.org:8443/x"]),
    ("d", ["example.org"]),
    ("e", ["example.org"]),
]


def pick(query: Query) -> str:
    return choose(query, ITEMS, id_of=lambda i: i[0], hosts_of=lambda i: i[1], source="t")[0]


def test_the_most_specific_host_wins() -> None:
    assert pick(Query(domain="github.com")) == "a"
    assert pick(Query(domain="www.github.com")) == "a"
    assert pick(Query(domain="api.github.com")) == "b"
    assert pick(Query(domain="v2.api.github.com")) == "b"
    assert pick(Query(domain="code.example.org")) == "c"  # a URI with a port and path


def test_equal_matches_are_ambiguous_and_list_ids_only() -> None:
    with pytest.raises(ProviderError) as caught:
        pick(Query(domain="www.example.org"))
    assert str(caught.value).startswith("2 items match domain www.example.org: d, e")


def test_by_id_and_not_found() -> None:
    assert pick(Query(id="e")) == "e"
    with pytest.raises(NotFound):
        pick(Query(id="z"))
    with pytest.raises(NotFound):
        pick(Query(domain="thub.com"))


def test_provider_base_lookup_is_abstract() -> None:
    class Bare(Provider):
        name = "bare"

    with pytest.raises(NotImplementedError):
        Bare().lookup(Query(domain="x.com"))
    assert isinstance(Item(credential_id="x", domain="x.com"), Item)
