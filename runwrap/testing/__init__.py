"""Helpers for testing code that uses runwrap, against a real listener and no vault.

- `runwrap.testing.plugin`: the pytest fixtures `runwrap_listener` and `runwrap_client`, loaded
  through the `pytest11` entry point (docs/api.md);
- `runwrap.testing.listener.RunningListener`: a `runwrap listen` process in a temporary home;
- `runwrap.testing.contract.ProviderContract`: the tests every provider passes.

Nothing is imported here, so loading the pytest plugin costs nothing for projects that do not use it.
"""
