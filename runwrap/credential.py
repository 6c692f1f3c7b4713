"""What a vault item is, how a query names one, and how a domain matches a host.

Shared by providers (which return `Item`s), the listener (which turns an item into the fields a
request names) and the consumer (which receives a `Credential` of `Secret`s).
"""

from __future__ import annotations

# collections.abc's ABCs, from the module that `os` has already imported: `collections.abc` itself
# imports the whole `collections` package (~1.2 ms of each `runwrap PROFILE -- cmd`).
from _collections_abc import Mapping

from runwrap.record import FrozenRecord, Record
from runwrap.secret import Secret

TYPE_CHECKING = False  # not typing's: the exec path imports this module
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

FIELDS = ("username", "password", "totp", "uri", "notes", "domain", "credential_id")
# Any other key of an item is a field too (`STRIPE_KEY: api_key`): an OpenBao key, a `key: value` line
# in pass, a KeePass custom string, a Bitwarden custom field, a key of the command provider's JSON.
# Names and ids are checked with str methods, not `re` (~4 ms of imports and compiles on the exec path).
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_DIGITS = "0123456789"
_FIELD_START = frozenset(_LETTERS + "_")
_FIELD_CHARS = frozenset(_LETTERS + _DIGITS + "_.-")
_MAX_FIELD = 128


def is_field_name(name: object) -> bool:
    """True for a name a profile or `--env VAR=FIELD` may ask for: a standard field or an item's key.

    `[A-Za-z_][A-Za-z0-9_.-]{0,127}`: a letter or `_`, then up to 127 of letters, digits, `_`, `.`, `-`.
    """
    return (isinstance(name, str) and 0 < len(name) <= _MAX_FIELD and name[0] in _FIELD_START
            and _FIELD_CHARS.issuperset(name))

# An id is a vault's own item id, or a path (OpenBao's `secret/team/deploy`): `/`-separated parts,
# none empty and none starting with a dot, so no id can climb out of where a provider looks.
_ID_START = frozenset(_LETTERS + _DIGITS)  # the first part's first character
_ID_PART_START = frozenset(_LETTERS + _DIGITS + "_:@-")  # every later part's
_ID_CHARS = frozenset(_LETTERS + _DIGITS + "._:@-")
_MAX_ID = 256
_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")


def _is_id(text: str) -> bool:
    """`^[A-Za-z0-9][A-Za-z0-9._:@-]*(?:/[A-Za-z0-9_:@-][A-Za-z0-9._:@-]*)*$`, as `re.match` took it
    (its `$` also matched before one newline at the end)."""
    first, *rest = (text[:-1] if text.endswith("\n") else text).split("/")
    return (first[:1] in _ID_START and _ID_CHARS.issuperset(first)
            and all(part[:1] in _ID_PART_START and _ID_CHARS.issuperset(part) for part in rest))


def _is_label(label: str) -> bool:
    """1 to 63 of a-z 0-9 _ -, not starting or ending with a hyphen."""
    return 0 < len(label) < 64 and label[0] != "-" and label[-1] != "-" and _LABEL_CHARS.issuperset(label)


def normalize_domain(domain: str) -> str:
    """Lower case, no trailing dot, IDNA-encoded; ValueError if it is not a host name."""
    host = domain.strip().rstrip(".").lower()
    # An ASCII name is its own IDNA form (the label checks below are stricter than the codec's), and
    # the codec's import (unicodedata, stringprep) costs ~1 ms of every `runwrap PROFILE -- cmd`.
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise ValueError(f"not a domain name: {domain!r}") from exc
    if not host or len(host) > 253 or not all(_is_label(label) for label in host.split(".")):
        raise ValueError(f"not a domain name: {domain!r}")
    return host


def host_of(uri_or_host: str) -> str:
    """The host of a URI (`https://github.com/login` -> `github.com`), or the text itself."""
    text = uri_or_host.strip()
    if "://" in text:
        from urllib.parse import urlsplit  # the listener's; urllib.parse costs ~1.5 ms of a launch

        text = urlsplit(text).hostname or ""
    else:
        text = text.split("/", 1)[0].split(":", 1)[0]
    return text.rstrip(".").lower()


def host_matches(item_host: str, query_domain: str) -> bool:
    """True if `item_host` is `query_domain` or a parent of it (`github.com` serves `api.github.com`)."""
    item_host = host_of(item_host)
    if not item_host:
        return False
    return query_domain == item_host or query_domain.endswith("." + item_host)


class Query(FrozenRecord):
    """Exactly one of `domain` or `id` (a vault item id)."""

    __slots__ = ("domain", "id")
    domain: str | None
    id: str | None

    def __init__(self, domain: str | None = None, id: str | None = None) -> None:
        if (domain is None) == (id is None):
            raise ValueError("a query names exactly one of a domain or an id")
        if id is not None and (len(id) > _MAX_ID or not _is_id(id)):
            raise ValueError(f"not a vault item id: {id!r}")
        self._init(domain=None if domain is None else normalize_domain(domain), id=id)

    def to_wire(self) -> dict[str, str]:
        return {"domain": self.domain} if self.domain is not None else {"id": str(self.id)}

    @classmethod
    def from_wire(cls, data: object) -> Query:
        if not isinstance(data, dict) or len(data) != 1:
            raise ValueError("a query is an object with one key, domain or id")
        ((key, value),) = data.items()
        if key not in ("domain", "id") or not isinstance(value, str):
            raise ValueError("a query is an object with one key, domain or id")
        return cls(**{key: value})

    def __str__(self) -> str:
        return f"domain {self.domain}" if self.domain is not None else f"id {self.id}"


class Lease(Record):
    """The lease a dynamic secret came with (OpenBao's `database/creds/ROLE`), as the provider read it.

    The listener keeps it for as long as the consumer's lease and hands it back to the provider's
    `renew_lease` / `revoke_lease`. `lease_id` is a `Secret`: with it and the listener's token the
    credential can be renewed or revoked, so it is never shown, logged or sent to a consumer. `path`
    (the engine path that minted it), `duration` (seconds granted by the read) and `renewable` are
    what an audit log may record. `wipe()` once the lease is over.
    """

    __slots__ = ("duration", "lease_id", "path", "renewable")

    def __init__(self, lease_id: Secret, duration: float, renewable: bool, path: str) -> None:
        self.lease_id = lease_id
        self.duration = duration
        self.renewable = renewable
        self.path = path

    def wipe(self) -> None:
        self.lease_id.wipe()


class Item(Record):
    """One vault item as a provider returns it. Secret-bearing fields are `Secret`s.

    `extra` holds every key the item has, by name (the standard ones too, where a provider knows
    them as keys), for profiles that name any field. `lease` is set when the item is a dynamic secret;
    `wipe()` leaves it alone, since the lease outlives the values the listener sent (it is revoked
    later) and is wiped by whoever ends it.
    """

    __slots__ = ("credential_id", "domain", "extra", "lease", "notes", "password", "totp_secret", "uri",
                 "username")

    def __init__(self, credential_id: str, domain: str, username: str = "", password: Secret | None = None,
                 totp_secret: Secret | None = None, uri: str = "", notes: Secret | None = None,
                 extra: dict[str, Secret] | None = None, lease: Lease | None = None) -> None:
        self.credential_id = credential_id
        self.domain = domain
        self.username = username
        self.password = Secret() if password is None else password
        self.totp_secret = totp_secret  # the stored seed; only its current code leaves the listener
        self.uri = uri
        self.notes = notes
        self.extra: dict[str, Secret] = {} if extra is None else extra
        self.lease = lease

    def field_names(self) -> list[str]:
        """The names of the fields this item has a value for (names only: what an error may show)."""
        standard = [name for name in FIELDS if self.standard(name)]
        return [*standard, *sorted(k for k in self.extra if k not in FIELDS)]

    def standard(self, name: str) -> Secret | str | None:
        """A standard field's stored value (the TOTP *seed* for "totp"), or None if it has none."""
        values: dict[str, Secret | str | None] = {
            "username": self.username, "password": self.password, "totp": self.totp_secret, "uri": self.uri,
            "notes": self.notes, "domain": self.domain, "credential_id": self.credential_id,
        }
        value = values[name]
        return value if value else None

    def values(self, wanted: Iterable[str]) -> dict[str, Secret]:
        """The `wanted` fields this item has, as new Secrets; the TOTP seed becomes its current code.

        A name the item has no value for is simply absent: the caller decides whether that is an error.
        """
        out: dict[str, Secret] = {}
        for name in wanted:
            if name == "totp" and self.totp_secret:
                from runwrap.totp import totp  # only items with a seed pay for this import

                out[name] = Secret(totp(self.totp_secret))
            elif name in FIELDS and name != "totp":
                value = self.standard(name)
                if value is not None:
                    out[name] = Secret(value.buffer) if isinstance(value, Secret) else Secret(value)
            elif name in self.extra and name != "totp":
                out[name] = Secret(self.extra[name].buffer)
        return out

    def wipe(self) -> None:
        for secret in (self.password, self.totp_secret, self.notes, *self.extra.values()):
            if secret is not None:
                secret.wipe()


class Credential(Mapping[str, Secret]):
    """The fields a consumer received, each a `Secret`; wiped by `wipe()` or on leaving a `with`."""

    def __init__(self, fields: Mapping[str, Secret], available: Iterable[str] | None = None,
                 ttl: float | None = None) -> None:
        self._fields = dict(fields)
        # When a field that was asked for is missing: the names of the fields the item does have.
        self.available: tuple[str, ...] | None = None if available is None else tuple(available)
        # A dynamic secret's lease (seconds its read gave): it dies then unless a held lease renews it.
        self.ttl = ttl

    def __getitem__(self, name: str) -> Secret:
        return self._fields[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __getattr__(self, name: str) -> Secret:
        if name in FIELDS:
            return self._fields.get(name, Secret())
        raise AttributeError(name)

    def wipe(self) -> None:
        for secret in self._fields.values():
            secret.wipe()

    def __enter__(self) -> Credential:
        return self

    def __exit__(self, *exc: object) -> None:
        self.wipe()

    def __repr__(self) -> str:
        return f"Credential({', '.join(f'{k}=***' for k in self._fields)})"
