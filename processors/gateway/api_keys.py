"""API keys to tenants: who is calling the gateway, from `Authorization: Bearer <key>`.

The table is `[gateway.keys]`: each entry maps a key to the tenant it speaks for. An
entry's key is either the key itself or, better, `sha256:<hex digest of the key>`,
so that a config file or a Secret holds nothing a reader could call with:

    [gateway.keys]
    "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" = "acme"

Plain keys are hashed as the table is built; afterwards only digests are held, and
a presented key is hashed and looked up by digest. Comparing digests rather than
keys means a lookup's timing says nothing useful about any key. Errors name an
entry by its position, never by its key: keys stay out of logs and messages.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from tierline.schemas.identifier import MAX_LENGTH, check_identifier

HASHED_PREFIX = "sha256:"
_HEX_DIGEST = re.compile(r"^[0-9a-fA-F]{64}$")
_BEARER = re.compile(r"^\s*bearer\s+(\S+)\s*$", re.IGNORECASE)


class KeyTableError(ValueError):
    """The key table is wrong; the message names the entry by position, not by key."""


def digest(key: str) -> str:
    """The table's form of a key: the hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class KeyTable:
    """Digests of API keys, each to its tenant. Its repr shows how many, never which."""

    tenants: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_config(cls, entries: Mapping[str, object]) -> KeyTable:
        """The table of `[gateway.keys]`; raises `KeyTableError` for an entry that is wrong."""
        tenants: dict[str, str] = {}
        for position, (key, tenant) in enumerate(entries.items(), start=1):
            where = f"gateway.keys entry {position}"
            if not isinstance(key, str) or not key or any(c.isspace() for c in key):
                raise KeyTableError(f"{where}: a key must be non-empty text without spaces")
            if not isinstance(tenant, str):
                raise KeyTableError(f"{where}: the tenant must be a string")
            _check_tenant(tenant, where)
            if key.startswith(HASHED_PREFIX):
                hexdigest = key[len(HASHED_PREFIX) :]
                if not _HEX_DIGEST.match(hexdigest):
                    raise KeyTableError(
                        f"{where}: after {HASHED_PREFIX} comes the 64 hex digits of the "
                        'key\'s SHA-256 (e.g. `printf %s "$KEY" | sha256sum`)'
                    )
                hexdigest = hexdigest.lower()
            else:
                hexdigest = digest(key)
            if tenants.get(hexdigest, tenant) != tenant:
                raise KeyTableError(f"{where}: the same key is given to two tenants")
            tenants[hexdigest] = tenant
        return cls(tenants)

    def __len__(self) -> int:
        return len(self.tenants)

    def tenant_of(self, key: str) -> str | None:
        """The tenant `key` speaks for; None for a key the table does not hold."""
        return self.tenants.get(digest(key))

    def __repr__(self) -> str:
        return f"KeyTable({len(self.tenants)} keys)"


def bearer_key(authorization: str | None) -> str | None:
    """The key of an `Authorization: Bearer <key>` header; None when absent or not Bearer."""
    if not authorization:
        return None
    found = _BEARER.match(authorization)
    return found.group(1) if found else None


def _check_tenant(tenant: str, where: str) -> None:
    if not 0 < len(tenant) <= MAX_LENGTH:
        raise KeyTableError(f"{where}: the tenant must be 1-{MAX_LENGTH} characters")
    try:
        check_identifier(tenant)
    except ValueError as exc:
        raise KeyTableError(f"{where}: the tenant {exc}") from None
