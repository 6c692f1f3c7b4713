"""Which injected values are masked: secrets, not the identifiers `run --env-all` adds unasked."""

from __future__ import annotations

from pathlib import Path

SHOW = 'echo "uri=$U domain=$D id=$I user=$N password=$P"'
SHOW_AAC = 'echo "uri=$AAC_URI domain=$AAC_DOMAIN id=$AAC_CREDENTIAL_ID user=$AAC_USERNAME password=$AAC_PASSWORD"'


def test_env_all_masks_the_secrets_but_not_the_identifiers(listener) -> None:
    result = listener.run("run", "--domain", "github.com", "--env-all", "--", "sh", "-c", SHOW_AAC)
    assert result.stdout == ("uri=https://github.com domain=github.com id=8b4c5e0a-0000-4000-8000-000000000001"
                             " user=*** password=***\n"), result.stderr


def test_an_identifier_mapped_by_name_is_masked_as_spec_says(listener, tmp_path: Path) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text("credentials:\n  - domain: github.com\n    env:\n      U: uri\n      D: domain\n"
                       "      I: credential_id\n      N: username\n      P: password\n")
    result = listener.run(str(profile), "--", "sh", "-c", SHOW)
    assert result.stdout == "uri=*** domain=*** id=*** user=*** password=***\n", result.stderr
    run = listener.run("run", "--domain", "github.com", "--env", "D=domain", "--env", "P=password", "--",
                       "sh", "-c", 'echo "domain=$D password=$P"')
    assert run.stdout == "domain=*** password=***\n", run.stderr


def test_env_all_with_env_is_refused_before_anything_is_fetched(listener, tmp_path) -> None:
    marker = tmp_path / "started"
    before = len(listener.audit_events())
    result = listener.run("run", "--domain", "github.com", "--env-all", "--env", "MYPW=password", "--",
                          "touch", str(marker), check=False)
    assert result.returncode == 125 and not marker.exists()
    assert result.stderr.startswith("runwrap: --env-all and --env do not combine")
    assert len(listener.audit_events()) == before  # nothing was asked for
