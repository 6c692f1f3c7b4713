"""One injected bug in runwrap, for the tests of how an unexpected exception is reported.

With this folder on PYTHONPATH and RUNWRAP_TEST_BUG=MODULE:FUNCTION set, that function of runwrap
raises ZeroDivisionError. Nothing else changes: the installed console script runs against real
files, a real listener and real children; only runwrap's own code gets a bug to report.
"""

from __future__ import annotations

import importlib
import os

_target = os.environ.get("RUNWRAP_TEST_BUG")
if _target:
    _module, _, _name = _target.partition(":")

    def _bug(*_args: object, **_kwargs: object) -> None:
        raise ZeroDivisionError("a bug injected by tests/helpers/bug")

    setattr(importlib.import_module(_module), _name, _bug)
