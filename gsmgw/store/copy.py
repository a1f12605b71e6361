"""``gsmgw store copy``: move a gateway's data between stores (SQLite → PostgreSQL).

The target is migrated to the current schema first and must be empty (unless
forced); the source must be at the current schema too (start the old gateway
once with this release, or run ``gsmgw store migrate``). Rows are copied table
by table in foreign-key order, in chunks, in one transaction on the target, so
a failed copy leaves nothing behind. Stop the gateway before copying its queue.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import func, select, text

from gsmgw.errors import StoreError
from gsmgw.store import tables as t
from gsmgw.store.migrate import current_revision, head_revision
from gsmgw.store.repo import Store

log = logging.getLogger(__name__)

CHUNK_ROWS = 2000
# Tables whose rows are the gateway's data: the target must have none of them.
DATA_TABLES = frozenset(
    {"messages", "message_parts", "inbound_messages", "status_reports", "events", "api_keys", "modems"}
)


def copy_store(
    src_url: str,
    dst_url: str,
    *,
    force: bool = False,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Copy every table; returns rows copied per table."""
    src = Store(src_url)
    dst = Store(dst_url)
    try:
        head = head_revision()
        if current_revision(src.engine) != head:
            raise StoreError(
                f"source schema is at {current_revision(src.engine)!r}, this release needs {head!r}: "
                "migrate it first (gsmgw store migrate --url SOURCE)"
            )
        dst.migrate()
        tables = [tb for tb in t.metadata.sorted_tables]
        with dst.engine.connect() as conn:
            busy = {tb.name: n for tb in tables
                    if tb.name in DATA_TABLES
                    and (n := conn.execute(select(func.count()).select_from(tb)).scalar_one())}
        if busy and not force:
            raise StoreError(f"target is not empty ({busy}); use --force to copy into it anyway")
        counts: dict[str, int] = {}
        with src.engine.connect() as sconn, dst.engine.begin() as dconn:
            for tb in tables:
                if tb.name not in DATA_TABLES:
                    # Rows a migration seeds (cursors, settings): the source's replace them.
                    dconn.execute(tb.delete())
                n = 0
                result = sconn.execution_options(yield_per=CHUNK_ROWS).execute(select(tb))
                for chunk in result.partitions(CHUNK_ROWS):
                    dconn.execute(tb.insert(), [dict(r._mapping) for r in chunk])
                    n += len(chunk)
                    if progress:
                        progress(tb.name, n)
                counts[tb.name] = n
            if dst.engine.dialect.name == "postgresql":
                # Serial ids were copied explicitly: move the sequences past them.
                for tb in tables:
                    for col in tb.primary_key.columns:
                        seq = dconn.execute(
                            text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": tb.name, "c": col.name}
                        ).scalar()
                        if seq:
                            dconn.execute(text(
                                f"SELECT setval('{seq}', COALESCE((SELECT MAX({col.name}) FROM {tb.name}), 0) + 1,"
                                " false)"
                            ))
        return counts
    finally:
        src.close()
        dst.close()
