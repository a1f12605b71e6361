"""The opt-out list: numbers that asked (STOP) or were put there through the API.

A number is found in any of its renderings: ``number_key`` (the last 8 digits)
narrows the search, ``gsmgw.numbers.same_number`` decides.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Select, bindparam, delete, insert, select
from sqlalchemy.exc import IntegrityError

from gsmgw.domain import EventType
from gsmgw.numbers import lookup_keys, number_key, same_number
from gsmgw.store import tables as t
from gsmgw.store.erasure import tombstone_of
from gsmgw.store.events import insert_event
from gsmgw.store.executor import Executor, batchable
from gsmgw.store.prepared import prebuilt, run
from gsmgw.store.records import utcnow

_OPTED_OUT = select(t.optouts.c.number, t.optouts.c.number_key).where(
    t.optouts.c.number_key.in_(bindparam("b_keys", expanding=True)))
# Up to this many bound values, one statement of fixed shape (cached per shape, run by
# prepared.run): the lookup every single POST makes before its enqueue. An expanding IN
# and a second SELECT built per call for the tombstones were a fifth of the writer
# thread's time at 1,500 POSTs/s.
_FIXED_SHAPE_MAX = 16


@functools.cache
def _listed(n_keys: int, n_tombs: int) -> Select[Any]:
    """``number_key IN (:k0, ...) OR number IN (:t0, ...)``, built once per shape."""
    o = t.optouts
    where = o.c.number_key.in_([bindparam(f"k{i}", type_=o.c.number_key.type) for i in range(n_keys)])
    if n_tombs:
        where = where | o.c.number.in_([bindparam(f"t{i}", type_=o.c.number.type) for i in range(n_tombs)])
    return prebuilt(select(o.c.number, o.c.number_key).where(where))


_listed(1, 1)  # a single POST's shape (one key, one tombstone), built at import


def _listed_rows(conn: Connection, keys: list[str], tombs: list[str]) -> list[Any]:
    """(number, number_key) of the rows whose key is one of ``keys`` or whose number is
    one of ``tombs``: one fixed-shape statement when few, else an expanding IN."""
    if 0 < len(keys) and len(keys) + len(tombs) <= _FIXED_SHAPE_MAX:
        params = {f"k{i}": k for i, k in enumerate(keys)}
        params.update({f"t{i}": v for i, v in enumerate(tombs)})
        return list(run(conn, _listed(len(keys), len(tombs)), params).all())
    rows = list(conn.execute(_OPTED_OUT, {"b_keys": keys}).all())  # a bulk request's many numbers
    if tombs:
        o = t.optouts
        rows += conn.execute(select(o.c.number, o.c.number_key).where(o.c.number.in_(tombs))).all()
    return rows


class OptoutsRepo:
    def __init__(self, db: Executor, *, region: str | None = None) -> None:
        self.db = db
        # Where a national rendering of a number is read (gsmgw.numbers).
        self.region = region

    def rows_in(self, conn: Connection, number: str) -> list[Any]:
        """The rows that list ``number``, in whatever rendering they were stored."""
        tomb = tombstone_of(number, self.region)
        rows = _listed_rows(conn, list(lookup_keys(number, self.region)), [] if tomb is None else [tomb])
        return [r for r in rows if r.number == tomb or same_number(r.number, number, self.region)]

    def add_in(self, conn: Connection, number: str, source: str, keyword: str,
               inbound_id: str | None, note: str, now: dt.datetime) -> bool:
        """Add ``number`` in the caller's transaction (with its event); False if listed."""
        if self.rows_in(conn, number):
            return False
        conn.execute(
            insert(t.optouts).values(
                number=number, number_key=number_key(number), source=source, keyword=keyword[:40],
                inbound_id=inbound_id, note=note, created_at=now,
            )
        )
        insert_event(conn, EventType.OPTOUT_ADDED, now, payload={
            "number": number, "source": source, "keyword": keyword, "inbound_id": inbound_id})
        return True

    def remove_in(self, conn: Connection, number: str, now: dt.datetime, *, source: str) -> bool:
        """Remove every rendering of ``number`` in the caller's transaction; False if none."""
        rows = self.rows_in(conn, number)
        if not rows:
            return False
        conn.execute(delete(t.optouts).where(t.optouts.c.number.in_([r.number for r in rows])))
        insert_event(conn, EventType.OPTOUT_REMOVED, now, payload={"number": number, "source": source})
        return True

    def add_optout(self, number: str, *, source: str = "api", keyword: str = "", note: str = "") -> bool:
        """Put a number on the opt-out list; False if it already was."""
        try:
            with self.db.engine.begin() as conn:
                return self.add_in(conn, number, source, keyword, None, note, utcnow())
        except IntegrityError:
            return False

    def remove_optout(self, number: str, *, source: str = "api") -> bool:
        with self.db.engine.begin() as conn:
            return self.remove_in(conn, number, utcnow(), source=source)

    @batchable
    def opted_out(self, numbers: Sequence[str]) -> set[str]:
        """Those of ``numbers`` that are on the opt-out list (any rendering of them).

        Batchable (issue 17): every single POST asks this before its enqueue; a call
        that could not share the group commit split it, one transaction per request."""
        if not numbers:
            return set()
        keys_of = {n: lookup_keys(n, self.region) for n in set(numbers)}
        keys = list(set().union(*keys_of.values()))
        # An erased number is kept as a tombstone (its hash): still refused (issue 21).
        tombs = {n: tomb for n in set(numbers) if (tomb := tombstone_of(n, self.region)) is not None}
        with self.db.read() as conn:
            rows = _listed_rows(conn, keys, list(set(tombs.values())))
        if not rows:
            return set()
        listed = {r.number for r in rows}
        erased = {n for n, tomb in tombs.items() if tomb in listed}
        by_key: dict[str, list[str]] = {}
        for r in rows:
            by_key.setdefault(r.number_key, []).append(r.number)
        return erased | {
            n for n, ks in keys_of.items()
            if any(same_number(n, x, self.region) for k in ks for x in by_key.get(k, ()))
        }

    def list_optouts(self, *, after: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        o = t.optouts
        q = select(o).order_by(o.c.number).limit(limit)
        if after:
            q = q.where(o.c.number > after)
        with self.db.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q).all()]


__all__ = ["OptoutsRepo"]
