"""pytest fixtures for projects that embed runwrap, so they can test their wrappers without a vault.

Installed with runwrap and loaded by pytest through the `pytest11` entry point; nothing to configure.

    def test_deploy_gets_its_token(runwrap_client):
        with runwrap_client.credential(domain="github.com") as cred:
            assert cred.password.reveal() == "alligator5"    # the example provider's fixed data

- `runwrap_listener`: a real `runwrap listen` process (the example provider by default) in a fresh
  temporary `RUNWRAP_HOME`, whose own consumer is already paired with scope `*`; a
  `runwrap.testing.listener.RunningListener`. Run CLI commands as that consumer with
  `runwrap_listener.env` or `runwrap_listener.run(...)`; make narrower peers with `paired_home()`.
  Stopped, and its home removed, when the test ends.
- `runwrap_client`: a `runwrap.Client` for that consumer, closed when the test ends.

Another provider, by marker or by indirect parametrization (the parameter wins over the marker):

    @pytest.mark.runwrap_provider("command", command="python3 fake_vault.py")
    def test_with_my_vault(runwrap_client): ...

    @pytest.mark.parametrize("runwrap_listener", ["example", {"provider": "command", "command": "..."}],
                             indirect=True)
    def test_each(runwrap_listener): ...

This module imports only pytest at load time, and defines nothing but the two fixtures and the marker's
registration, so having runwrap installed never changes a pytest run that does not ask for them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from runwrap.api import Client
    from runwrap.testing.listener import RunningListener

MARKER = "runwrap_provider"


def pytest_configure(config: pytest.Config) -> None:
    # Registered so projects running with --strict-markers can use it.
    config.addinivalue_line(
        "markers", f"{MARKER}(name, **options): the provider (and its --provider-option values) "
        "that the runwrap_listener fixture starts `runwrap listen` with",
    )


def _provider(request: pytest.FixtureRequest) -> tuple[str, dict[str, str]]:
    """The provider this test names: an indirect parameter, else the marker, else `example`."""
    param = getattr(request, "param", None)
    if param is not None:
        if isinstance(param, str):
            return param, {}
        if isinstance(param, Mapping) and isinstance(param.get("provider"), str):
            options = {str(k): str(v) for k, v in param.items() if k != "provider"}
            return str(param["provider"]), options
        pytest.fail(f"runwrap_listener's parameter is a provider name or a mapping with a 'provider' key, "
                    f"not {param!r}", pytrace=False)
    marker = request.node.get_closest_marker(MARKER)
    if marker is not None:
        if len(marker.args) != 1 or not isinstance(marker.args[0], str):
            pytest.fail(f'use @pytest.mark.{MARKER}("NAME", option="value", ...)', pytrace=False)
        return marker.args[0], {str(k): str(v) for k, v in marker.kwargs.items()}
    return "example", {}


@pytest.fixture
def runwrap_listener(request: pytest.FixtureRequest) -> Iterator[RunningListener]:
    """A `runwrap listen` in a temporary home, its consumer paired with scope `*`."""
    from runwrap.testing.listener import RunningListener

    provider, options = _provider(request)
    listener = RunningListener(provider, provider_options=options)
    try:
        try:
            listener.start()
            listener.pair()
        except RuntimeError as exc:  # the listener's own words: an unknown provider, a bad option
            pytest.fail(f"runwrap_listener: {exc}", pytrace=False)
        yield listener
    finally:
        listener.cleanup()


@pytest.fixture
def runwrap_client(runwrap_listener: RunningListener) -> Iterator[Client]:
    """A `runwrap.Client` paired with `runwrap_listener`, closed after the test."""
    with runwrap_listener.client() as client:
        yield client
