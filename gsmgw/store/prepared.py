"""Statements built once for the hot paths (issue 17), and run cheaply on SQLite.

SQLAlchemy keys its compiled-statement cache on a statement's structure, which it
computes by walking the statement; building ``update(...).where(...).values(...)``
anew on every call and hashing it was most of the store's CPU per sent message.
A statement built once with bind parameters is hashed once (the key is memoised
on the object) and compiled once per dialect. Modules keep their own fixed
statements; this module builds the few whose SET clause varies, once per shape.

Even a cached statement costs ~20-70 µs of SQLAlchemy bookkeeping per execution
(execution context, parameter dict, result metadata), about six times what SQLite
itself takes for a one-row statement, and a sent message with its status report
runs about twenty. :func:`run` executes such a prebuilt statement on SQLite through
the DBAPI cursor of the connection's own transaction: compiled once, with the
types' own bind and result processors (public ``TypeEngine`` API), so values go in
and come out exactly as through ``Connection.execute``. It falls back to
``Connection.execute`` for anything it does not cover (PostgreSQL, expanding IN
lists, Python-side column defaults, a connection outside a transaction); the test
``tests/store/test_prepared.py`` runs every fast statement both ways.
"""

from __future__ import annotations

import functools
from collections import namedtuple
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection, Select, Update, bindparam, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.expression import Executable

from gsmgw.store import tables as t


@functools.cache
def message_update(columns: tuple[str, ...], uncount_attempt: bool = False) -> Update:
    """``UPDATE messages SET <columns> WHERE id = :mid``; each column's value is bound
    as ``v_<column>`` (see :func:`message_params`)."""
    m = t.messages
    sets: dict[Any, Any] = {c: bindparam(f"v_{c}") for c in columns}
    if uncount_attempt:
        sets["attempts"] = m.c.attempts - 1
    return prebuilt(update(m).where(m.c.id == bindparam("mid")).values(sets))


def update_message(conn: Any, message_id: str, values: dict[str, Any], *, uncount_attempt: bool = False) -> None:
    """Run the prebuilt UPDATE of one message for these values."""
    run(conn, message_update(tuple(values), uncount_attempt),
        {"mid": message_id, **{f"v_{k}": v for k, v in values.items()}})


# --- the fast path -------------------------------------------------------------------------


class _Plan:
    """One statement compiled for SQLite: its SQL, how to build its positional
    parameters, and how to turn result rows into typed values."""

    __slots__ = ("params", "processors", "row_type", "sql")

    def __init__(self, sql: str, params: list[tuple[str, Any, Callable[[Any], Any] | None]],
                 row_type: type | None, processors: list[Callable[[Any], Any] | None] | None) -> None:
        self.sql = sql
        # (bind name, fixed value or _GIVEN, bind processor)
        self.params = params
        self.row_type = row_type
        self.processors = processors

    def args(self, given: dict[str, Any]) -> tuple[Any, ...]:
        out = []
        for name, fixed, proc in self.params:
            value = given[name] if fixed is _GIVEN else fixed
            out.append(proc(value) if proc is not None and value is not None else value)
        return tuple(out)


_GIVEN = object()  # marks a bind whose value the caller gives
_NO_PLAN = object()  # marks a statement the fast path does not cover
# id(statement) -> (the statement, its plan, None before its first run, or _NO_PLAN).
# Only statements registered with prebuilt() are here: a statement built per call
# (SIM care's extra terms) must not grow this map.
_plans: dict[int, tuple[Executable, Any]] = {}

S = TypeVar("S", bound=Executable)


def prebuilt(stmt: S) -> S:
    """Register a statement built once (module level or cached) for :func:`run`'s fast path."""
    _plans.setdefault(id(stmt), (stmt, None))
    return stmt


def _plan_for(stmt: Executable, conn: Connection) -> _Plan | None:
    hit = _plans.get(id(stmt))
    if hit is None or hit[0] is not stmt:
        return None
    if hit[1] is None:
        plan = _compile(stmt, conn)
        _plans[id(stmt)] = (stmt, _NO_PLAN if plan is None else plan)
        return plan
    return None if hit[1] is _NO_PLAN else hit[1]


def _compile(stmt: Executable, conn: Connection) -> _Plan | None:
    dialect = conn.dialect
    compiled: Any = stmt.compile(dialect=dialect)
    # Prefetch = Python-side column defaults SQLAlchemy would compute at execution.
    if (compiled.positiontup is None or compiled.insert_prefetch or compiled.update_prefetch
            or "POSTCOMPILE" in compiled.string
            or any(b.expanding or b.callable is not None for b in compiled.binds.values())):
        return None
    params = []
    for name in compiled.positiontup:
        bp = compiled.binds[name]
        fixed = _GIVEN if bp.required else bp.value
        params.append((name, fixed, bp.type.dialect_impl(dialect).bind_processor(dialect)))
    cols: Sequence[Any] | None = None
    if isinstance(stmt, Select):
        cols = list(stmt.selected_columns)
    elif getattr(stmt, "_returning", ()):
        cols = list(stmt.exported_columns)  # type: ignore[attr-defined]
    if cols is None:
        return _Plan(compiled.string, params, None, None)
    names = [c.key for c in cols]
    if len(set(names)) != len(names) or not all(n.isidentifier() and not n.startswith("_") for n in names):
        return None
    procs = [c.type.dialect_impl(dialect).result_processor(dialect, None) for c in cols]
    return _Plan(compiled.string, params, namedtuple("Row", names), procs)  # type: ignore[misc]


class FastResult:
    """The part of SQLAlchemy's ``Result`` the hot statements use."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def all(self) -> list[Any]:
        return self._rows

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        if len(self._rows) != 1:
            raise LookupError(f"expected one row, got {len(self._rows)}")
        return self._rows[0][0]

    def scalars(self) -> list[Any]:
        return [r[0] for r in self._rows]


def run(conn: Connection, stmt: Executable, params: dict[str, Any] | list[dict[str, Any]]) -> Any:
    """Execute a prebuilt statement: through the DBAPI cursor on SQLite, else (or for
    anything the fast path does not cover) through ``conn.execute``."""
    # Connection events (a test or a probe watching the SQL) see every statement: with
    # a listener on the engine the slow path is taken.
    dispatch = conn.engine.dispatch  # where gsmgw's tests and probes listen (cheaper than the joined one)
    if (conn.dialect.name != "sqlite" or not conn.in_transaction()
            or dispatch.before_cursor_execute or dispatch.after_cursor_execute):
        return conn.execute(stmt, params)
    plan = _plan_for(stmt, conn)
    if plan is None:
        return conn.execute(stmt, params)
    cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    args: Any = None
    try:
        if isinstance(params, list):
            args = [plan.args(p) for p in params]
            cur.executemany(plan.sql, args)
            return FastResult([], cur.rowcount)
        args = plan.args(params)
        cur.execute(plan.sql, args)
        if plan.row_type is None:
            return FastResult([], cur.rowcount)
        procs = plan.processors or []
        make = plan.row_type._make  # type: ignore[attr-defined]
        rows = [make([v if p is None or v is None else p(v) for p, v in zip(procs, raw, strict=True)])
                for raw in cur.fetchall()]
        return FastResult(rows, cur.rowcount)
    except conn.dialect.loaded_dbapi.Error as exc:
        # As Connection.execute raises it: callers catch IntegrityError, OperationalError...
        raise DBAPIError.instance(plan.sql, args, exc, conn.dialect.loaded_dbapi.Error,
                                  dialect=conn.dialect) from exc
    finally:
        cur.close()


__all__ = ["FastResult", "message_update", "prebuilt", "run", "update_message"]
