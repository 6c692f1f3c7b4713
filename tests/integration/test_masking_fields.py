"""Which injected values are masked: secrets, not the identifiers `run --env-all` adds unasked; their
hex forms when a profile's `mask_hex: true` or `--mask-hex` asks for them."""

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


# alligator5 as `xxd -p` and `od -An -tx1` print it; the child prints both.
HEX_DUMPS = 'printf %s "$P" | xxd -p; printf %s "$P" | od -An -tx1 -v'
ALLIGATOR5_HEX = "616c6c696761746f7235"


def test_hex_masking_is_reachable_from_a_profile_key_and_the_flags(listener, tmp_path: Path) -> None:
    plain = tmp_path / "plain.yaml"
    plain.write_text("credentials:\n  - domain: github.com\n    env: {P: password}\n")
    hexed = tmp_path / "hexed.yaml"
    hexed.write_text(plain.read_text() + "mask_hex: true\n")
    off = listener.run(str(plain), "--", "sh", "-c", HEX_DUMPS)
    assert off.stdout.startswith(ALLIGATOR5_HEX + "\n"), off.stdout  # off by default: it costs speed
    for result in (listener.run(str(hexed), "--", "sh", "-c", HEX_DUMPS),
                   listener.run(str(plain), "--mask-hex", "--", "sh", "-c", HEX_DUMPS),
                   listener.run("run", "--domain", "github.com", "--env", "P=password", "--mask-hex", "--",
                                "sh", "-c", HEX_DUMPS)):
        assert result.stdout == "***\n ***\n", (result.stdout, result.stderr)
    bad = tmp_path / "bad.yaml"
    bad.write_text(plain.read_text() + "mask_hex: sometimes\n")
    check = listener.run("profiles", "check", str(bad), check=False)
    assert check.returncode == 1 and check.stderr == (f"runwrap: {bad}:4: mask_hex is text"
                                                      " — write mask_hex: true or mask_hex: false\n"), check.stderr
