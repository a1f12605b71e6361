"""Migration 0007: messages.idempotency_fingerprint and the owner index, up and down."""

from __future__ import annotations

from alembic import command
from sqlalchemy import create_engine, inspect

from gsmgw.store.migrate import alembic_config, current_revision, upgrade


def test_0007_up_and_down(store_url: str) -> None:
    engine = create_engine(store_url)
    try:
        upgrade(engine, "0007")
        assert current_revision(engine) == "0007"
        insp = inspect(engine)
        assert "idempotency_fingerprint" in {c["name"] for c in insp.get_columns("messages")}
        assert "ix_messages_owner" in {i["name"] for i in insp.get_indexes("messages")}
        cfg = alembic_config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0006")
        insp = inspect(engine)
        assert "idempotency_fingerprint" not in {c["name"] for c in insp.get_columns("messages")}
        assert "ix_messages_owner" not in {i["name"] for i in insp.get_indexes("messages")}
    finally:
        engine.dispose()
