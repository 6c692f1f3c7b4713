"""The `openbao` provider (also `vault`): KV items and dynamic secrets from an OpenBao or Vault server.

    runwrap listen --provider openbao --provider-option address=https://bao.example.com:8200 \\
        --provider-option role_id_file=/etc/runwrap/role_id --provider-option secret_id_file=/etc/runwrap/secret_id

Items. A domain query `D` reads the KV item `<mount>/<prefix>D`, then its parent domains
(`api.github.com`, then `github.com`; never a bare top-level label). An id query is a path exactly as
`bao kv get` or `bao read` takes it: like the CLI, the provider asks `sys/internal/ui/mounts/PATH`
which mount holds it, reads a KV v2 item at `<mount>/data/<rest>` (`PATH@N`: version N) and anything
else as it is (`kv1/team/deploy`, `database/creds/app`). The keys `username`, `password`, `uri`,
`notes` and `totp` (an otpauth:// URI or a base32 seed) fill the standard fields; every key, those
included, is also in `Item.extra`. An item's credential_id is its path, with `@VERSION` on KV v2.

Dynamic secrets. A read that returns a lease gives an item whose `lease` the listener renews with
`renew_lease` and ends with `revoke_lease`; a renewal the server cuts short (the lease's max TTL)
raises `LeaseExhausted` with the seconds left. Leases belong to the token that read them: when that
token expires or is revoked, the server revokes them too (docs/teams.md).

The listener's token comes from `token_file`, an AppRole login (`role_id_file` + `secret_id_file`),
or `BAO_TOKEN`/`VAULT_TOKEN`. At start the server's seal status is checked and the token looked up
(or logged in for). A background thread renews it at two thirds of its TTL, because a listener can
sit idle for longer than a token lives and a check before each request would find it dead; once
renewal can extend it no further, the thread logs in again with AppRole. A request that finds the
token expired anyway (a laptop that slept) logs in first, and a 403 is checked against
`auth/token/lookup-self` to tell a refused token from a path the policy does not allow.

HTTP is the standard library's `http.client` over a few keep-alive connections (no new dependency;
`hvac` would bring `requests` and `urllib3`). Tokens, secret ids and lease ids are `Secret`s and no
message names one; what cannot be wiped: `json.loads` copies of a response and http.client's header
buffers are Python objects that live until they are collected.

Layout: http.py (connections, request bodies, errors by status), token.py (the listener's token and
its keeper thread), provider.py (lookups and leases); this package exports the two provider classes.
"""

from __future__ import annotations

from runwrap.providers.openbao.provider import OpenBaoProvider, VaultProvider

__all__ = ["OpenBaoProvider", "VaultProvider"]
