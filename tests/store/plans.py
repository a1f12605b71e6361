"""The SQLite query plans of the statements a store method really sends."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event

from gsmgw.store import Store


def plans_of(store: Store, wanted: Callable[[str], bool], run: Callable[[], Any]) -> list[list[str]]:
    """Run ``run()``; the ``EXPLAIN QUERY PLAN`` lines of each statement it sent that
    ``wanted(sql)`` picks, in order (an AssertionError if it sent none)."""
    seen: list[tuple[str, Any]] = []

    def grab(conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        if wanted(statement):
            seen.append((statement, params))

    event.listen(store.engine, "before_cursor_execute", grab)
    try:
        run()
    finally:
        event.remove(store.engine, "before_cursor_execute", grab)
    assert seen, "no statement of the kind looked for was sent"
    with store.engine.connect() as conn:
        return [[r[-1] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params).all()]
                for sql, params in seen]
