"""Migration 0016: the status-report matching indexes, on a store that already holds parts and reports."""

from __future__ import annotations

from alembic import command
from sqlalchemy import create_engine, inspect, text

from gsmgw.store.migrate import alembic_config, current_revision, upgrade


def _indexes(engine: object, table: str) -> dict[str, list[str]]:
    return {i["name"]: i["column_names"] for i in inspect(engine).get_indexes(table)}


def test_upgrade_widens_the_report_indexes_and_downgrade_restores_them(store_url: str) -> None:
    engine = create_engine(store_url)
    try:
        upgrade(engine, "0013")
        assert _indexes(engine, "message_parts")["ix_message_parts_report"] == ["modem_id", "tp_mr"]
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO status_reports (modem_id, tp_mr, recipient, status, category, meaning, received_at)"
                " VALUES ('sim1', 7, '+15551234567', 0, 'delivered', '', '2026-01-01 00:00:00')"))
        upgrade(engine, "0016")
        assert current_revision(engine) == "0016"
        assert _indexes(engine, "message_parts")["ix_message_parts_report"] == ["modem_id", "tp_mr", "sent_at"]
        assert _indexes(engine, "status_reports")["ix_status_reports_match"] == ["modem_id", "tp_mr", "received_at"]
        cfg = alembic_config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0013")
        assert _indexes(engine, "message_parts")["ix_message_parts_report"] == ["modem_id", "tp_mr"]
        assert "ix_status_reports_match" not in _indexes(engine, "status_reports")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT tp_mr FROM status_reports")).scalars().all() == [7]
    finally:
        engine.dispose()
