"""Migration 0004: messages.door/door_data, and Kannel's DLR request moved out of callback_url."""

from __future__ import annotations

import datetime as dt
import json

from alembic import command
from sqlalchemy import create_engine, text

from gsmgw.store.migrate import alembic_config, current_revision, upgrade

DLR = {"mask": 3, "url": "http://127.0.0.1/dlr?t=%d", "user": "ops", "host": "gw1"}


def _insert(conn: object, message_id: str, callback_url: str | None) -> None:
    now = dt.datetime(2026, 1, 1)
    conn.execute(  # type: ignore[attr-defined]
        text("INSERT INTO messages (id, batch_id, to_number, text, encoding, parts_total, state, priority, flash, "
             "delivery_report, transactional, resend_unknown, callback_url, concat_ref, attempts, created_at, "
             "updated_at, send_at, valid_until) VALUES (:id, :id, '+15551234567', 'hi', 'gsm7', 1, 'queued', 0, "
             "false, true, false, false, :cb, 0, 0, :now, :now, :now, :now)"),
        {"id": message_id, "cb": callback_url, "now": now},
    )


def _rows(engine: object) -> dict[str, tuple[object, ...]]:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        rows = conn.execute(text("SELECT id, callback_url, door, door_data FROM messages")).all()
    return {r[0]: tuple(r[1:]) for r in rows}


def test_upgrade_moves_kannel_dlr_out_of_callback_url_and_downgrade_puts_it_back(store_url: str) -> None:
    engine = create_engine(store_url)
    try:
        upgrade(engine, "0003")
        kannel_cb = "kannel-dlr:" + json.dumps(DLR, separators=(",", ":"))
        with engine.begin() as conn:
            _insert(conn, "k1", kannel_cb)
            _insert(conn, "w1", "http://hooks.lan/cb")
            _insert(conn, "n1", None)
        upgrade(engine, "0004")  # later revisions have their own tests
        assert current_revision(engine) == "0004"
        rows = _rows(engine)
        assert rows["k1"][:2] == (None, "kannel") and json.loads(str(rows["k1"][2])) == DLR
        assert rows["w1"] == ("http://hooks.lan/cb", None, None)
        assert rows["n1"] == (None, None, None)

        cfg = alembic_config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0003")
        with engine.connect() as conn:
            back = dict(conn.execute(text("SELECT id, callback_url FROM messages")).all())
        assert back == {"k1": kannel_cb, "w1": "http://hooks.lan/cb", "n1": None}
    finally:
        engine.dispose()
