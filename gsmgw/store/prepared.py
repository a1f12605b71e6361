"""Statements built once for the hot paths (issue 17).

SQLAlchemy keys its compiled-statement cache on a statement's structure, which it
computes by walking the statement; building ``update(...).where(...).values(...)``
anew on every call and hashing it was most of the store's CPU per sent message.
A statement built once with bind parameters is hashed once (the key is memoised
on the object) and compiled once per dialect. Modules keep their own fixed
statements; this module builds the few whose SET clause varies, once per shape.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Update, bindparam, update

from gsmgw.store import tables as t


@functools.cache
def message_update(columns: tuple[str, ...], uncount_attempt: bool = False) -> Update:
    """``UPDATE messages SET <columns> WHERE id = :mid``; each column's value is bound
    as ``v_<column>`` (see :func:`message_params`)."""
    m = t.messages
    sets: dict[Any, Any] = {c: bindparam(f"v_{c}") for c in columns}
    if uncount_attempt:
        sets["attempts"] = m.c.attempts - 1
    return update(m).where(m.c.id == bindparam("mid")).values(sets)


def update_message(conn: Any, message_id: str, values: dict[str, Any], *, uncount_attempt: bool = False) -> None:
    """Run the prebuilt UPDATE of one message for these values."""
    conn.execute(message_update(tuple(values), uncount_attempt),
                 {"mid": message_id, **{f"v_{k}": v for k, v in values.items()}})


__all__ = ["message_update", "update_message"]
