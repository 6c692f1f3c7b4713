"""Any key of an item is a field: a profile or `--env VAR=FIELD` names it, the child gets it masked.

Against a real listener on the command provider, whose items are whatever JSON its script prints.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from runwrap.testing.listener import RunningListener

VAULT = """
import json, sys
query = json.load(sys.stdin)
if query.get("domain", "").endswith("stripe.com"):
    print(json.dumps({"credential_id": "st-1", "domain": "stripe.com", "username": "shop",
                      "password": "pw-stripe-0001", "api_key": "sk_live_0123456789abcdef",
                      "webhook.secret": "whsec_abcdefabcdef"}))
    sys.exit(0)
print(json.dumps({"error": "not_found"}))
sys.exit(1)
"""


@pytest.fixture(scope="module")
def vault_listener(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningListener]:
    folder = tmp_path_factory.mktemp("vault")
    script = folder / "vault"
    script.write_text(f"#!{sys.executable}\n" + textwrap.dedent(VAULT))
    script.chmod(0o700)
    with RunningListener("command", provider_options={"command": str(script)}) as running:
        running.pair()
        yield running


def test_a_profile_names_any_key_and_the_child_gets_it_masked(vault_listener: RunningListener,
                                                              tmp_path: Path) -> None:
    profile = tmp_path / "pay.yaml"
    profile.write_text("credentials:\n  - domain: api.stripe.com\n    env:\n"
                       "      STRIPE_KEY: api_key\n      HOOK: webhook.secret\n      USER_NAME: username\n")
    result = vault_listener.run(str(profile), "--", "sh", "-c",
                                'echo "key=$STRIPE_KEY hook=$HOOK len=${#STRIPE_KEY} user=$USER_NAME"')
    assert result.stdout == "key=*** hook=*** len=24 user=***\n"
    assert "sk_live" not in result.stdout + result.stderr


def test_run_env_names_any_key(vault_listener: RunningListener) -> None:
    result = vault_listener.run("run", "--domain", "stripe.com", "--env", "K=api_key", "--", "sh", "-c",
                                'test "$K" = sk_live_0123456789abcdef && echo same')
    assert result.stdout == "same\n"


def test_a_key_the_item_lacks_names_the_keys_it_has_and_no_values(vault_listener: RunningListener,
                                                                   tmp_path: Path) -> None:
    marker = tmp_path / "started"
    result = vault_listener.run("run", "--domain", "stripe.com", "--env", "K=api_secret", "--", "touch",
                                str(marker), check=False)
    assert result.returncode == 125 and not marker.exists()
    assert result.stderr == ("runwrap: the item for domain stripe.com has no api_secret value "
                             "(it has: username, password, domain, credential_id, api_key, webhook.secret); "
                             "remove K or pick another field\n")


def test_the_api_asks_for_any_key(vault_listener: RunningListener) -> None:
    with vault_listener.client() as client, client.credential(domain="stripe.com", fields=["api_key"]) as cred:
        assert cred["api_key"].reveal() == "sk_live_0123456789abcdef"
        assert list(cred) == ["api_key"]
