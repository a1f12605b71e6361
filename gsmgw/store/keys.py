"""API keys: stored hashed, shown once."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from typing import Any

from sqlalchemy import insert, select, update

from gsmgw.store import tables as t
from gsmgw.store.audit import record_in
from gsmgw.store.executor import Executor, batchable
from gsmgw.store.records import ApiKey, utcnow

SCOPES = frozenset({"send", "read", "admin"})


def hash_secret(secret: str) -> str:
    # API keys are 192-bit random strings, so a fast hash is safe here (no
    # dictionary to attack); what matters is that the database never holds them.
    return hashlib.sha256(secret.encode()).hexdigest()


def custom_key_problem(key: str) -> str | None:
    """Why a caller-chosen API key is refused (the key policy), or None."""
    if len(key) < 16 or len(key) > 200 or not key.isprintable() or " " in key:
        return f"an API key must be 16-200 printable characters without spaces (this one has {len(key)})"
    return None


def key_id_of(presented: str) -> str | None:
    """The id inside a ``gsk_<id>_<secret>`` key, or None for a caller-chosen key."""
    parts = presented.split("_")
    if len(parts) >= 3 and parts[0] == "gsk" and len(parts[1]) == 8:
        return parts[1]
    return None


class KeysRepo:
    def __init__(self, db: Executor) -> None:
        self.db = db

    def create_api_key(
        self,
        name: str,
        scopes: Iterable[str],
        *,
        rate_per_s: int = 0,
        daily_quota: int = 0,
        key: str | None = None,
        actor: str = "unknown",
    ) -> tuple[str, str]:
        """Create a key; returns (key id, the full key). The key is shown once only."""
        scope_set = set(scopes)
        unknown = scope_set - SCOPES
        if unknown or not scope_set:
            raise ValueError(f"scopes must be a non-empty subset of {sorted(SCOPES)}")
        key_id = secrets.token_hex(4)
        full = key if key is not None else f"gsk_{key_id}_{secrets.token_urlsafe(24)}"
        if key is not None:
            # A caller-chosen key (gsmgw demo --api-key): stored hashed like any other.
            if (problem := custom_key_problem(key)) is not None:
                raise ValueError(problem)
            key_id = key_id_of(key) or hashlib.sha256(full.encode()).hexdigest()[:8]
        with self.db.tx() as conn:
            if key is not None:
                conn.execute(t.api_keys.delete().where(t.api_keys.c.id == key_id))
            conn.execute(
                insert(t.api_keys).values(
                    id=key_id,
                    name=name,
                    key_hash=hash_secret(full),
                    scopes=",".join(sorted(scope_set)),
                    rate_per_s=rate_per_s,
                    daily_quota=daily_quota,
                    created_at=utcnow(),
                )
            )
            record_in(conn, actor, "key.create", key_id, {"name": name, "scopes": sorted(scope_set),
                                                          "rate_per_s": rate_per_s, "daily_quota": daily_quota})
        return key_id, full

    @batchable
    def is_active(self, key_id: str) -> bool:
        """Whether the key exists and is not revoked (a console session re-checks this;
        it never holds the key itself)."""
        k = t.api_keys
        with self.db.read() as conn:
            row = conn.execute(select(k.c.revoked_at).where(k.c.id == key_id)).first()
        return row is not None and row.revoked_at is None

    @batchable
    def verify_api_key(self, presented: str) -> ApiKey | None:
        digest = hash_secret(presented)
        key_id = key_id_of(presented) or hashlib.sha256(presented.encode()).hexdigest()[:8]
        with self.db.read() as conn:
            rows = conn.execute(select(t.api_keys).where(t.api_keys.c.id == key_id)).all()
        for row in rows:
            if row.revoked_at is None and hmac.compare_digest(row.key_hash, digest):
                return ApiKey(
                    id=row.id,
                    name=row.name,
                    scopes=frozenset(row.scopes.split(",")),
                    rate_per_s=row.rate_per_s,
                    daily_quota=row.daily_quota,
                )
        return None

    def revoke_api_key(self, key_id: str, *, actor: str = "unknown") -> bool:
        with self.db.tx() as conn:
            res = conn.execute(
                update(t.api_keys)
                .where(t.api_keys.c.id == key_id, t.api_keys.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            if res.rowcount == 1:
                record_in(conn, actor, "key.revoke", key_id)
        return res.rowcount == 1

    def list_api_keys(self) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            rows = conn.execute(select(t.api_keys).order_by(t.api_keys.c.created_at)).all()
        return [
            {
                "id": r.id,
                "name": r.name,
                "scopes": r.scopes.split(","),
                "created_at": r.created_at,
                "revoked_at": r.revoked_at,
            }
            for r in rows
        ]


__all__ = ["SCOPES", "KeysRepo", "hash_secret", "key_id_of"]
