"""Migration 0005 (the console): inbound read marks, indexes on part sent_at and batch id."""

from __future__ import annotations

from alembic import command
from sqlalchemy import create_engine, inspect, text

from gsmgw.store.migrate import alembic_config, current_revision, upgrade


def test_upgrade_adds_read_marks_and_indexes_and_downgrade_removes_them(store_url: str) -> None:
    engine = create_engine(store_url)
    try:
        upgrade(engine, "0004")
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO inbound_messages (id, modem_id, sender, text, encoding, parts_total, parts_received,"
                " complete, dedup_key, received_at, missing) VALUES ('i1', 'sim1', '+15551234567', 'hi', 'gsm7',"
                " 1, 1, true, 'd1', '2026-01-01 00:00:00', '')"))
        upgrade(engine, "0005")
        assert current_revision(engine) == "0005"
        insp = inspect(engine)
        assert "read_at" in {c["name"] for c in insp.get_columns("inbound_messages")}
        assert "ix_message_parts_sent_at" in {i["name"] for i in insp.get_indexes("message_parts")}
        assert "ix_messages_batch" in {i["name"] for i in insp.get_indexes("messages")}
        with engine.connect() as conn:
            assert conn.execute(text("SELECT id, read_at FROM inbound_messages")).all() == [("i1", None)]

        cfg = alembic_config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0004")
        insp = inspect(engine)
        assert "read_at" not in {c["name"] for c in insp.get_columns("inbound_messages")}
        assert "ix_messages_batch" not in {i["name"] for i in insp.get_indexes("messages")}
        with engine.connect() as conn:
            assert conn.execute(text("SELECT id FROM inbound_messages")).all() == [("i1",)]
    finally:
        engine.dispose()
