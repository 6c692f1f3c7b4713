"""A credential from a real listener never shows its values: repr, str, format, logging, tracebacks."""

from __future__ import annotations

import io
import json
import logging
import pickle
import pprint
import subprocess
import sys
import traceback
from collections.abc import Iterator

import pytest

from runwrap import Client, Credential
from runwrap.testing.listener import RunningListener

# The values of the example provider's github.com item; the checks below look for them in output.
VALUES = ("alligator5", "example", "8b4c5e0a-0000-4000-8000-000000000001")


def leaked(text: str) -> list[str]:
    return [value for value in VALUES if value in text]


@pytest.fixture
def cred(listener: RunningListener) -> Iterator[Credential]:
    with listener.client() as client, client.credential(domain="github.com") as credential:
        assert credential.password.reveal() == VALUES[0]  # the value is there to leak
        yield credential


def test_repr_str_and_format_show_no_value(cred):
    texts = [repr(cred), str(cred), f"{cred}", f"{cred!r}", format(cred), pprint.pformat(cred),
             "%s %r" % (cred, cred), repr(dict(cred)), str(list(cred.values())), pprint.pformat(dict(cred))]  # noqa: UP031
    for name in cred:
        secret = cred[name]
        texts += [repr(secret), str(secret), f"{secret}", f"{secret!r}", f"{secret:>40}", "%s" % secret]  # noqa: UP031
    assert leaked("\n".join(texts)) == []
    assert repr(cred) == "Credential(username=***, password=***, uri=***, domain=***, credential_id=***)"
    assert repr(cred.password) == str(cred.password) == "Secret(***)"


def test_logging_the_credential_shows_no_value(cred):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s %(args)s"))
    logger = logging.getLogger("runwrap-tests.secrecy")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        logger.info(cred)
        logger.info("got %s", cred)
        logger.info("got %r and %s", cred, cred.password)
        logger.debug("fields %s", dict(cred))
        logger.warning("as a mapping: %(password)s", cred)
        try:
            raise RuntimeError(f"deploy failed for {cred.username} with {cred}")
        except RuntimeError:
            logger.exception("while using %s", cred)
    finally:
        logger.removeHandler(handler)
    output = stream.getvalue()
    assert output.count("Secret(***)") >= 5 and "Credential(" in output
    assert leaked(output) == []


def use(cred: Credential) -> None:
    token = cred.password  # a local that a traceback with locals shows
    raise RuntimeError(f"the deploy refused {token} for {cred.username!r}")


def test_a_traceback_with_the_credential_as_a_local_shows_no_value(cred):
    with pytest.raises(RuntimeError) as info:
        use(cred)
    formatted = "".join(traceback.TracebackException.from_exception(info.value, capture_locals=True).format())
    assert "token = Secret(***)" in formatted and "cred = Credential(" in formatted
    assert leaked(formatted) == []
    assert leaked("".join(traceback.format_exception(info.value))) == []


def test_json_and_pickle_refuse_rather_than_leak(cred):
    with pytest.raises(TypeError) as as_json:
        json.dumps(dict(cred))
    with pytest.raises(TypeError) as as_pickle:
        pickle.dumps(cred)
    assert leaked(f"{as_json.value} {as_pickle.value}") == []


SCRIPT = """\
import logging
from runwrap import Client

logging.basicConfig(level=logging.INFO)

def deploy(client):
    cred = client.credential(domain="github.com")
    password = cred.password
    logging.info("deploying with %s", cred)
    raise SystemError(f"deploy failed: {password} {cred}")

with Client() as client:
    deploy(client)
"""


def test_an_uncaught_exception_in_a_program_shows_no_value(listener, tmp_path):
    script = tmp_path / "deploy.py"
    script.write_text(SCRIPT)
    result = subprocess.run([sys.executable, str(script)], env=listener.env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    assert "SystemError: deploy failed: Secret(***) Credential(" in result.stderr
    assert "INFO:root:deploying with Credential(" in result.stderr
    assert leaked(result.stdout + result.stderr) == []


def test_a_client_repr_names_the_connection_only(listener):
    with listener.client() as client:
        assert repr(client) == f"Client(connection='listener', address='unix:{listener.socket}')"
        assert isinstance(client, Client)
