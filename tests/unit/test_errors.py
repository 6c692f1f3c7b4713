"""The one error table and the one reporter (runwrap.errors): statuses per command family, and
what the user reads."""

from __future__ import annotations

import io
import json

import pytest

from runwrap import errors
from runwrap.errors import CONNECT, EXEC, OTHER, report, status
from runwrap.listener.audit import AuditError
from runwrap.totp import InvalidSeed

CLASSES = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.RunwrapError)]

# SPEC: exec forms 125 for runwrap's own errors, 126 cannot execute, 127 not found; connect as aac
# (1 error, 2 connection failed, 3 handshake/auth/timeout, 4 not found or denied, 5 fingerprint);
# every other command 1, or 2 for usage.
EXPECTED = {
    "RunwrapError": (125, 1, 1), "UsageError": (125, 1, 2), "ProfileError": (125, 1, 1),
    "ConfigError": (125, 1, 1), "ConnectionFailed": (125, 2, 1), "HandshakeFailed": (125, 3, 1),
    "PairingFailed": (125, 3, 1), "ProtocolError": (125, 3, 1), "NotFound": (125, 4, 1),
    "Denied": (125, 4, 1), "RateLimited": (125, 4, 1), "FingerprintMismatch": (125, 5, 1),
    "ProviderError": (125, 1, 1),
    "LeaseExhausted": (125, 1, 1), "LeaseRevoked": (125, 1, 1), "CannotExecute": (126, 1, 1),
    "CommandNotFound": (127, 1, 1),
}


def test_every_error_class_has_a_row_and_the_rows_are_specs():
    assert {c.__name__ for c in CLASSES} == set(EXPECTED)
    for cls in CLASSES:
        exc = cls("x")
        assert (status(exc, EXEC), status(exc, CONNECT), status(exc, OTHER)) == EXPECTED[cls.__name__], cls
        assert (exc.exit_status, exc.connect_status) == EXPECTED[cls.__name__][:2]


def test_a_class_defined_elsewhere_exits_as_its_nearest_base():
    assert [status(InvalidSeed("x"), f) for f in (EXEC, CONNECT, OTHER)] == [125, 1, 1]  # a ProviderError
    assert [status(AuditError("x"), f) for f in (EXEC, CONNECT, OTHER)] == [125, 1, 1]


def test_a_bug_and_ctrl_c():
    assert [status(KeyError("k"), f) for f in (EXEC, CONNECT, OTHER)] == [125, 1, 1]
    assert [status(KeyboardInterrupt(), f) for f in (EXEC, CONNECT, OTHER)] == [130, 130, 130]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_each_docstring_says_what_happened_and_what_to_do(cls):
    doc = " ".join((cls.__doc__ or "").split())
    sentences = [s for s in doc.split(". ") if s]
    assert len(sentences) >= 2, f"{cls.__name__}: say what happened, then what to do"


def test_one_line_for_a_runwrap_error():
    out = io.StringIO()
    assert report(errors.ConnectionFailed("cannot reach the listener"), CONNECT, stream=out) == 2
    assert out.getvalue() == "runwrap: cannot reach the listener\n"


def test_a_bug_is_named_by_its_type_only():
    out = io.StringIO()
    assert report(ValueError("hunter2-but-longer"), EXEC, stream=out) == 125
    assert out.getvalue() == "runwrap: internal error (ValueError); run again with --debug\n"


def test_debug_puts_the_traceback_first():
    def fail() -> None:
        raise errors.NotFound("no item for domain x")

    out = io.StringIO()
    try:
        fail()
    except errors.NotFound as exc:
        assert report(exc, CONNECT, debug=True, stream=out) == 4
    text = out.getvalue()
    assert text.startswith("Traceback (most recent call last):") and "in fail" in text
    assert text.endswith("\nrunwrap: no item for domain x\n")


def test_ctrl_c_is_its_status_alone():
    out = io.StringIO()
    assert report(KeyboardInterrupt(), OTHER, stream=out) == 130
    assert out.getvalue() == ""


def test_json_answer_on_stdout_for_connect(capsys):
    out = io.StringIO()
    assert report(errors.FingerprintMismatch("not the pinned key"), CONNECT, json_output=True, stream=out) == 5
    assert out.getvalue() == ""
    assert json.loads(capsys.readouterr().out) == {
        "success": False, "error": {"message": "not the pinned key", "code": "fingerprint_mismatch"}}


def test_a_closed_stream_does_not_change_the_status():
    out = io.StringIO()
    out.close()
    assert report(errors.CommandNotFound("x: command not found"), EXEC, debug=True, stream=out) == 127
