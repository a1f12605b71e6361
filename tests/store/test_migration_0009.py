"""Migration 0009 (SIM care): its tables, messages.wait_reason and two indexes, up and
down, on SQLite and PostgreSQL; the partial index holds only transactional rows' order."""

from __future__ import annotations

from alembic import command
from sqlalchemy import create_engine, inspect

from gsmgw.store.migrate import alembic_config, current_revision, upgrade


def test_0009_up_and_down(store_url: str) -> None:
    engine = create_engine(store_url)
    try:
        upgrade(engine, "0009")
        assert current_revision(engine) == "0009"
        insp = inspect(engine)
        assert {"sim_care", "sim_usage", "sim_contacts"} <= set(insp.get_table_names())
        assert "wait_reason" in {c["name"] for c in insp.get_columns("messages")}
        indexes = {i["name"] for i in insp.get_indexes("messages")}
        assert {"ix_messages_sent_at", "ix_messages_claim_tx"} <= indexes
        assert insp.get_pk_constraint("sim_contacts")["constrained_columns"] == ["modem_id", "number", "day"]
        cfg = alembic_config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0011")
        insp = inspect(engine)
        assert not {"sim_care", "sim_usage", "sim_contacts"} & set(insp.get_table_names())
        assert "wait_reason" not in {c["name"] for c in insp.get_columns("messages")}
        assert not {"ix_messages_sent_at", "ix_messages_claim_tx"} & {i["name"] for i in insp.get_indexes("messages")}
    finally:
        engine.dispose()
