"""The SQLite fast path of prebuilt statements (gsmgw.store.prepared.run) writes and
reads exactly what ``Connection.execute`` does: every registered statement is run
both ways on two copies of one store file, and the results and the raw bytes of
every table (timestamps as stored text included) must be equal."""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Select, create_engine, event, update

from gsmgw.store import NewMessage, Store, claims, events, optouts, prepared, reports  # noqa: F401  (they register their statements)
from gsmgw.store import tables as t

UTC = dt.UTC
NOW = dt.datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)  # no microseconds: a format difference shows
SINCE = dt.datetime(2026, 11, 27, 12, 0, 0, 123456, tzinfo=UTC)


def _params(stmt: Any, mid: str, dialect: Any) -> dict[str, Any]:
    """A value for each bind the caller gives, by the naming the store uses."""
    values = {
        "b_mid": mid, "mid": mid, "b_seq": 1, "b_seqs": [1], "b_modem": "sim1", "b_tp_mr": 7, "b_now": NOW,
        "b_since": SINCE, "b_until": NOW + dt.timedelta(minutes=5), "b_grace": NOW, "b_group": "default",
        "b_at": SINCE, "b_host": "h1", "b_state": "failed", "b_code": "x", "b_text": "t\u00e9xt", "b_status": 0,
        "b_rid": 1, "b_recipient": "+15550001111", "b_category": "delivered", "b_meaning": "ok",
        "b_scts": SINCE, "b_discharge_at": None, "b_type": "sms:sent",
    }
    if getattr(stmt, "table", None) is t.message_parts and stmt.is_insert:
        values["b_seq"] = 3  # a new part of the seeded message
    compiled = stmt.compile(dialect=dialect)
    out = {}
    for name, bp in compiled.binds.items():
        if not bp.required:
            continue
        if name not in values and not name.startswith("v_"):  # the enqueue's inserts: one value per column
            py = bp.type.python_type if not isinstance(bp.type, t.UTCDateTime) else dt.datetime
            out[name] = {int: 1, bool: True, dt.datetime: SINCE}.get(py, f"x-{name}")
            if name == "b_message_id":
                out[name] = mid
        elif name.startswith("v_"):
            col = name[2:]
            out[name] = {"state": "sent", "updated_at": NOW, "lease_owner": None, "lease_until": None,
                         "sent_at": SINCE, "error_code": "e", "error_text": None, "send_at": NOW,
                         "modem_id": "sim1", "delivered_at": SINCE, "last_failed_modem": "sim2",
                         "sim_requested": "sim1"}.get(col, None)
        else:
            out[name] = values[name]
    return out


def _dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    db = sqlite3.connect(path)
    try:
        names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {n: db.execute(f'SELECT * FROM "{n}" ORDER BY rowid').fetchall() for n in names}
    finally:
        db.close()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("prep") / "seed.db"
    store = Store(f"sqlite:///{path}", host="h1", sqlite_synchronous="OFF")
    store.migrate()
    mid = store.messages.enqueue([NewMessage("+15550001111", "x" * 200, "gsm7", 2)]).message_ids[0]
    with store.engine.begin() as conn:
        conn.execute(update(t.message_parts).where(t.message_parts.c.message_id == mid)
                     .values(state="sent", modem_id="sim1", tp_mr=7, sent_at=NOW, recipient="+15550001111"))
        conn.execute(update(t.messages).where(t.messages.c.id == mid).values(state="sent", modem_id="sim1"))
    store.reports.record_status_report("sim1", tp_mr=9, recipient="+15550009999", status=0, category="delivered",
                                       meaning="ok", scts=None, discharge_at=None, window_s=3600)
    store.messages.enqueue([NewMessage("+15550002222", "y", "gsm7", 1, priority=3)])
    store.close()
    return path, mid


def _statements() -> list[tuple[str, Any]]:
    out = []
    for key, (stmt, _plan) in prepared._plans.items():
        out.append((f"{key}:{str(stmt).splitlines()[0][:60]}", stmt))
    return sorted(out, key=lambda kv: str(kv[1]))


def _run_both(seed: Path, mid: str, stmt: Any, tmp: Path) -> tuple[Any, Any, bool]:
    results, fast_taken = [], False
    for way in ("fast", "slow"):
        path = tmp / f"{way}.db"
        shutil.copy(seed, path)
        engine = create_engine(f"sqlite:///{path}")
        if way == "slow":
            event.listen(engine, "before_cursor_execute", lambda *a: None)  # any listener: the slow path
        try:
            with engine.begin() as conn:
                params = _params(stmt, mid, conn.dialect)
                if way == "fast":
                    fast_taken = prepared._plan_for(stmt, conn) is not None
                res = prepared.run(conn, stmt, params)
                rows = [tuple(r) for r in res] if _returns_rows(stmt) else None
        finally:
            engine.dispose()
        results.append((rows, _dump(path)))
    return results[0], results[1], fast_taken


def _returns_rows(stmt: Any) -> bool:
    return isinstance(stmt, Select) or bool(getattr(stmt, "_returning", ()))


def test_every_prebuilt_statement_gives_the_same_rows_and_bytes_both_ways(seeded: tuple[Path, str],
                                                                        tmp_path: Path) -> None:
    seed, mid = seeded
    stmts = _statements()
    assert len(stmts) >= 20
    slow_only = []
    for name, stmt in stmts:
        fast, slow, taken = _run_both(seed, mid, stmt, tmp_path)
        assert fast[0] == slow[0], f"{name}: rows differ"
        assert fast[1] == slow[1], f"{name}: stored bytes differ"
        if not taken:
            slow_only.append(name)
    # Only the expanding IN (several parts marked at once) is left to SQLAlchemy.
    assert len(slow_only) == 1 and "IN (" in str(dict(stmts)[slow_only[0]]), slow_only


def test_rows_are_typed_like_sqlalchemys(seeded: tuple[Path, str], tmp_path: Path) -> None:
    seed, mid = seeded
    path = tmp_path / "typed.db"
    shutil.copy(seed, path)
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            fast = prepared.run(conn, claims._S.take, _params(claims._S.take, mid, conn.dialect)).first()
            assert fast is None  # the message is not queued: nothing taken, as through SQLAlchemy
            cands = prepared.run(conn, reports._R.candidates, {"b_modem": "sim1", "b_tp_mr": 7,
                                                                "b_since": SINCE}).all()
            assert cands and cands[0].sent_at == NOW and cands[0].sent_at.tzinfo is UTC
            assert isinstance(cands[0].seq, int) and cands[0].message_id == mid
    finally:
        engine.dispose()


def test_statements_built_per_call_are_not_remembered(seeded: tuple[Path, str], tmp_path: Path) -> None:
    seed, _mid = seeded
    path = tmp_path / "adhoc.db"
    shutil.copy(seed, path)
    engine = create_engine(f"sqlite:///{path}")
    before = len(prepared._plans)
    try:
        with engine.begin() as conn:
            for _ in range(50):
                q = claims._S.claim.where(t.messages.c.priority >= 0)  # SIM care builds these per claim
                prepared.run(conn, q, _params(claims._S.claim, "x", conn.dialect))
    finally:
        engine.dispose()
    assert len(prepared._plans) == before


def test_outside_a_transaction_it_is_sqlalchemy(monkeypatch: pytest.MonkeyPatch,
                                                                seeded: tuple[Path, str], tmp_path: Path) -> None:
    seed, mid = seeded
    path = tmp_path / "notx.db"
    shutil.copy(seed, path)
    engine = create_engine(f"sqlite:///{path}")
    seen: list[str] = []
    orig = Connection.execute

    def spy(self: Connection, stmt: Any, *a: Any, **kw: Any) -> Any:
        seen.append(str(stmt)[:20])
        return orig(self, stmt, *a, **kw)

    monkeypatch.setattr(Connection, "execute", spy)
    try:
        with engine.connect() as conn:
            assert prepared.run(conn, claims._S.message_state, {"b_mid": mid}).scalar() == "sent"
        assert seen, "a read outside a transaction went around SQLAlchemy"
    finally:
        engine.dispose()


def test_a_constraint_violation_is_sqlalchemys_integrity_error(seeded: tuple[Path, str], tmp_path: Path) -> None:
    from sqlalchemy.exc import IntegrityError

    from gsmgw.store import messages

    seed, mid = seeded
    path = tmp_path / "dup.db"
    shutil.copy(seed, path)
    engine = create_engine(f"sqlite:///{path}")
    try:
        with pytest.raises(IntegrityError), engine.begin() as conn:
            params = _params(messages._INSERT_PART, mid, conn.dialect)
            params["b_seq"] = 1  # exists
            assert prepared._plan_for(messages._INSERT_PART, conn) is not None
            prepared.run(conn, messages._INSERT_PART, params)
    finally:
        engine.dispose()
