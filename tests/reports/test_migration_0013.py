"""Migration 0013 makes what store/tables.py describes (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect

from gsmgw.store import tables as t


def test_migration_creates_the_tables_and_columns(store: Any) -> None:
    insp = inspect(store.engine)
    for name in ("report_daily", "report_monthly", "audit_log", "job_leases"):
        got = {c["name"] for c in insp.get_columns(name)}
        assert got == set(t.metadata.tables[name].c.keys()), name
    assert "report_mark" in {c["name"] for c in insp.get_columns("messages")}
    assert {tuple(insp.get_pk_constraint("report_daily")["constrained_columns"])} == {
        ("day", "sim", "api_key_id", "campaign_id")}
