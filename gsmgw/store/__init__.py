"""Persistence: the only package that imports sqlalchemy."""

from gsmgw.store.repo import (
    ApiKey,
    ClaimedMessage,
    EnqueueResult,
    NewMessage,
    PartResult,
    ReportMatch,
    Store,
    new_id,
    utcnow,
)

__all__ = [
    "ApiKey",
    "ClaimedMessage",
    "EnqueueResult",
    "NewMessage",
    "PartResult",
    "ReportMatch",
    "Store",
    "new_id",
    "utcnow",
]
