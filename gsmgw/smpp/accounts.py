"""SMPP accounts: system_id + password, hashed with scrypt, checked at bind.

SMPP 3.4 passwords are at most 8 characters, so unlike API keys (192 random bits,
a fast hash is enough) they are guessable offline from a fast hash: scrypt makes
each guess cost ~16 MiB and tens of milliseconds. A bind that passed is remembered
for ``ttl_s`` (by a SHA-256 of system_id and password), so that an ESME
reconnecting in a loop does not cost a scrypt each time, and a revoked account
stops binding within that time.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

SCOPES = frozenset({"send", "read", "admin"})
MAX_SYSTEM_ID = 15
MAX_PASSWORD = 8
# scrypt cost: N=2^14, r=8 -> 16 MiB and ~30 ms on a PC, well under a second on a Pi 3.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 14, 8, 1


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    system_id: str
    scopes: frozenset[str]
    rate_per_s: int = 0
    daily_quota: int = 0
    max_binds: int = 0

    @property
    def may_send(self) -> bool:
        return bool(self.scopes & {"send", "admin"})

    @property
    def may_receive(self) -> bool:
        # Receipts are about the account's own messages; inbound SMS need "read".
        return bool(self.scopes & {"send", "read", "admin"})


def check_system_id(system_id: str) -> None:
    if not 1 <= len(system_id) <= MAX_SYSTEM_ID or not system_id.isascii() or not system_id.isprintable() \
            or " " in system_id:
        raise ValueError(f"system_id must be 1-{MAX_SYSTEM_ID} printable ASCII characters without spaces")


def check_password(password: str) -> None:
    if not 1 <= len(password) <= MAX_PASSWORD or not password.isascii() or not password.isprintable():
        raise ValueError(f"an SMPP 3.4 password is 1-{MAX_PASSWORD} printable ASCII characters")


def new_password() -> str:
    """8 characters from a 56-letter alphabet without look-alikes (~46 bits)."""
    alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(MAX_PASSWORD))


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        want = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(want))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


def account_of(row: dict[str, Any]) -> Account:
    return Account(
        id=row["id"], system_id=row["system_id"],
        scopes=frozenset(s for s in str(row["scopes"]).split(",") if s),
        rate_per_s=int(row.get("rate_per_s") or 0), daily_quota=int(row.get("daily_quota") or 0),
        max_binds=int(row.get("max_binds") or 0),
    )


class AccountBook:
    """Checks binds against the store, with a short cache of the outcome."""

    def __init__(self, store: Any, *, ttl_s: float = 30.0, negative_ttl_s: float = 2.0,
                 concurrent_hashes: int = 2) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.negative_ttl_s = negative_ttl_s
        self._cache: dict[bytes, tuple[float, Account | None]] = {}
        # Many connections guessing at once must not take every core (16 MiB each, too).
        self._hashing = asyncio.Semaphore(concurrent_hashes)
        # An unknown system_id costs a scrypt as well: the time of a refusal says
        # nothing about whether the system_id exists.
        self._decoy = hash_password(secrets.token_urlsafe(8))

    async def authenticate(self, system_id: str, password: str) -> Account | None:
        digest = hashlib.sha256(f"{system_id}\0{password}".encode("latin-1", "replace")).digest()
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        account = None
        row = None
        if 1 <= len(system_id) <= MAX_SYSTEM_ID:
            row = await self.store.call(self.store.smpp.get_account, system_id)
        async with self._hashing:
            stored = row["password_hash"] if row is not None else self._decoy
            ok = await asyncio.to_thread(verify_password, password, stored)
        if ok and row is not None:
            account = account_of(row)
        if len(self._cache) > 10_000:
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
        self._cache[digest] = (now + (self.ttl_s if account else self.negative_ttl_s), account)
        return account
