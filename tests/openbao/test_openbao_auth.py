"""The listener's own token against a real server: AppRole, renewal of short-lived tokens, logging in again
at max TTL, and the one-line errors for a refused token, a sealed server and one that cannot be reached."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from runwrap.credential import Query
from runwrap.errors import ProviderError
from runwrap.providers.openbao import OpenBaoProvider
from tests.polling import wait_for

from .bao_kit import BaoServer, free_port, write_secret_file

MakeProvider = Callable[..., OpenBaoProvider]


def works(provider: OpenBaoProvider) -> bool:
    return provider.lookup(Query(domain="github.com")).password.reveal() == "pw-github"


def token_alive(bao: BaoServer, token: str) -> bool:
    return bao.api("POST", "auth/token/lookup", {"token": token})[0] == 200


def approle_logins(bao: BaoServer, role: str) -> list[int]:
    """When each live token that an AppRole login to `role` made was created (unix seconds), as root sees them."""
    created = []
    for accessor in bao.ok("LIST", "auth/token/accessors")["data"]["keys"]:
        status, payload = bao.api("POST", "auth/token/lookup-accessor", {"accessor": accessor})
        if status == 200 and (payload["data"].get("meta") or {}).get("role_name") == role:
            created.append(int(payload["data"]["creation_time"]))
    return created


def test_approle_login_and_close_revokes_its_token(bao: BaoServer, make_provider: MakeProvider,
                                                   tmp_path: Path) -> None:
    role_id, secret_id = bao.approle("plain", tmp_path, token_ttl="1h")
    assert approle_logins(bao, "plain") == []
    provider = make_provider(role_id_file=str(role_id), secret_id_file=str(secret_id))
    assert works(provider)
    assert len(approle_logins(bao, "plain")) == 1
    provider.close()
    assert approle_logins(bao, "plain") == []  # its own token, revoked (with the leases it read)


def test_a_short_lived_token_is_renewed_while_the_listener_idles(bao: BaoServer, make_provider: MakeProvider,
                                                                 tmp_path: Path) -> None:
    token = bao.grant(ttl="3s")
    provider = make_provider(token_file=str(write_secret_file(tmp_path / "short", token)))
    started = time.monotonic()
    # No requests meanwhile: only the provider's own renewals can keep a 3 s token alive for 6 s.
    wait_for(lambda: not token_alive(bao, token) or time.monotonic() - started > 6.5, 15, "6.5 s to pass")
    assert token_alive(bao, token), "the token expired while the provider idled"
    assert works(provider)


def test_a_revoked_short_token_is_reported_once_it_is_dead_not_every_second(
        bao: BaoServer, make_provider: MakeProvider, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    token = bao.grant(ttl="3s")
    make_provider(token_file=str(write_secret_file(tmp_path / "short", token)))
    bao.ok("POST", "auth/token/revoke", {"token": token})
    with caplog.at_level(logging.WARNING, logger="runwrap"):
        wait_for(lambda: "the listener's token has expired" in caplog.text, 15, "the last word on the token")
    warnings = [r.getMessage() for r in caplog.records if r.name == "runwrap"]
    assert 1 <= len(warnings) <= 4 and all(token not in w for w in warnings)


def test_approle_logs_in_again_once_renewal_reaches_max_ttl(bao: BaoServer, make_provider: MakeProvider,
                                                            tmp_path: Path) -> None:
    role_id, secret_id = bao.approle("brief", tmp_path, token_ttl="3s", token_max_ttl="5s")
    provider = make_provider(role_id_file=str(role_id), secret_id_file=str(secret_id))
    (first,) = approle_logins(bao, "brief")
    # While the provider idles, its thread must log in again before the first token's 5 s max TTL...
    wait_for(lambda: any(created > first for created in approle_logins(bao, "brief")), 15,
             "a second AppRole login while idle")
    # ...and go on serving once that first token is gone.
    wait_for(lambda: first not in approle_logins(bao, "brief"), 15, "the first token to reach its max TTL")
    assert works(provider)


def test_token_and_address_from_the_environment(bao: BaoServer, listener_token: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAO_ADDR", bao.address)
    monkeypatch.setenv("BAO_TOKEN", listener_token)
    with OpenBaoProvider() as provider:
        assert works(provider)
    monkeypatch.delenv("BAO_ADDR")
    monkeypatch.delenv("BAO_TOKEN")
    monkeypatch.setenv("VAULT_ADDR", bao.address)
    monkeypatch.setenv("VAULT_TOKEN", listener_token)
    with OpenBaoProvider() as provider:
        assert works(provider)
    monkeypatch.delenv("VAULT_TOKEN")
    with pytest.raises(ProviderError, match="no token: set token_file"):
        OpenBaoProvider()
    monkeypatch.delenv("VAULT_ADDR")
    with pytest.raises(ProviderError, match="no server address"):
        OpenBaoProvider()


def one_line(caught: pytest.ExceptionInfo[ProviderError], *forbidden: str) -> str:
    message = str(caught.value)
    assert "\n" not in message
    for value in forbidden:
        assert value not in message and value not in repr(caught.value.args)
    return message


def test_a_refused_token_fails_at_start_in_one_line(bao: BaoServer, tmp_path: Path) -> None:
    bogus = "s.this-token-was-never-issued"
    with pytest.raises(ProviderError) as caught:
        OpenBaoProvider({"address": bao.address, "token_file": str(write_secret_file(tmp_path / "t", bogus))})
    assert "refused the listener's token" in one_line(caught, bogus)


def test_a_token_revoked_while_running_says_so(bao: BaoServer, make_provider: MakeProvider, tmp_path: Path) -> None:
    token = bao.grant()
    provider = make_provider(token_file=str(write_secret_file(tmp_path / "t", token)))
    assert works(provider)
    bao.ok("POST", "auth/token/revoke", {"token": token})
    with pytest.raises(ProviderError) as caught:
        provider.lookup(Query(domain="github.com"))
    assert "no longer accepts the listener's token" in one_line(caught, token)


def test_a_wrong_secret_id_is_refused_in_one_line(bao: BaoServer, tmp_path: Path) -> None:
    role_id, _ = bao.approle("wrongsecret", tmp_path)
    wrong = write_secret_file(tmp_path / "wrong", "0b7c1a4e-0000-4000-8000-00000000dead")
    with pytest.raises(ProviderError) as caught:
        OpenBaoProvider({"address": bao.address, "role_id_file": str(role_id), "secret_id_file": str(wrong)})
    assert "AppRole login refused" in one_line(caught, "0b7c1a4e-0000-4000-8000-00000000dead")


def test_an_unreachable_server_fails_at_start_in_one_line(token_file: Path) -> None:
    address = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ProviderError) as caught:
        OpenBaoProvider({"address": address, "token_file": str(token_file)})
    assert f"cannot reach the server at {address}: Connection refused" in one_line(caught)


def test_a_sealed_server_fails_in_one_line(tmp_path: Path) -> None:
    # Its own server: sealing the session's would break every other test.
    sealed = BaoServer(tmp_path).start()
    try:
        sealed.setup_listener_access()
        sealed.kv_put("secret/runwrap/github.com", {"password": "pw-github"})
        token_file = write_secret_file(tmp_path / "t", sealed.grant())
        running = OpenBaoProvider({"address": sealed.address, "token_file": str(token_file)})
        assert works(running)
        sealed.cli("operator", "seal")
        with pytest.raises(ProviderError) as caught:
            running.lookup(Query(domain="github.com"))
        assert f"the server at {sealed.address} is sealed" in one_line(caught, "pw-github")
        running.close()
        with pytest.raises(ProviderError) as caught:
            OpenBaoProvider({"address": sealed.address, "token_file": str(token_file)})
        assert "is sealed; unseal it (bao operator unseal) and start the listener again" in one_line(caught)
    finally:
        sealed.stop()


def test_tls_with_ca_cert_and_an_untrusted_certificate_in_one_line(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BAO_CACERT", "VAULT_CACERT"):
        monkeypatch.delenv(name, raising=False)
    secure = BaoServer(tmp_path, tls=True).start()  # -dev-tls: its own CA, a certificate for 127.0.0.1
    try:
        secure.setup_listener_access()
        secure.kv_put("secret/runwrap/github.com", {"password": "pw-github"})
        token_file = write_secret_file(tmp_path / "t", secure.grant())
        options = {"address": secure.address, "token_file": str(token_file)}
        with OpenBaoProvider({**options, "ca_cert": str(secure.ca_cert)}) as provider:
            assert works(provider)
        with pytest.raises(ProviderError) as caught:
            OpenBaoProvider(options)  # the system's CAs do not know the dev CA
        assert f"the certificate of {secure.address} is not trusted" in one_line(caught)
        assert "set ca_cert" in str(caught.value)
    finally:
        secure.stop()
