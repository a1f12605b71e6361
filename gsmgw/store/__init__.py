"""Persistence: the only package that imports sqlalchemy.

``Store`` (``gsmgw.store.repo``) is a facade over one repository per aggregate;
the values they take and return are in ``gsmgw.store.records``.
"""

from gsmgw.store.records import (
    ApiKey,
    CareGate,
    CareRecord,
    CareUsage,
    ClaimCare,
    ClaimedMessage,
    ClassifyFn,
    EnqueueResult,
    InboundPart,
    IngestResult,
    JoinFn,
    NewMessage,
    NextMark,
    OutboxEvent,
    OutboxRead,
    PartResult,
    ReportIn,
    ReportMatch,
    StoredInbound,
    new_id,
    utcnow,
)
from gsmgw.store.repo import Store

__all__ = [
    "ApiKey",
    "CareGate",
    "CareRecord",
    "CareUsage",
    "ClaimCare",
    "ClaimedMessage",
    "ClassifyFn",
    "EnqueueResult",
    "InboundPart",
    "IngestResult",
    "JoinFn",
    "NewMessage",
    "NextMark",
    "OutboxEvent",
    "OutboxRead",
    "PartResult",
    "ReportIn",
    "ReportMatch",
    "Store",
    "StoredInbound",
    "new_id",
    "utcnow",
]
