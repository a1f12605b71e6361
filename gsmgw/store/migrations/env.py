"""Alembic environment: the connection is handed in by gsmgw.store.migrate."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import create_engine

from gsmgw.store.tables import metadata, postgresql_options

config = context.config
connection = config.attributes.get("connection")


def _run(conn: Any) -> None:
    if conn.dialect.name == "postgresql":
        postgresql_options()
    context.configure(
        connection=conn,
        target_metadata=metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things in place
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:  # `alembic` CLI use by developers: -x url=...
    url = context.get_x_argument(as_dictionary=True).get("url", "sqlite:///gsmgw-dev.db")
    with create_engine(url).connect() as conn:
        _run(conn)
