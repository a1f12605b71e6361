"""Suite-wide fixtures: leak checks, PostgreSQL, store factories."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

PG_ENV = "GSMGW_TEST_PG_URL"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if isinstance(item, pytest.Function) and asyncio.iscoroutinefunction(item.obj):
            item.add_marker(pytest.mark.usefixtures("no_leaked_tasks"))


@pytest.fixture
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves tasks running (design.md rule 10)."""
    before = set(asyncio.all_tasks())
    yield
    # Give cancelled tasks one loop turn to finish.
    for _ in range(3):
        await asyncio.sleep(0)
    current = asyncio.current_task()
    leaked = [t for t in asyncio.all_tasks() if t not in before and t is not current and not t.done()]
    if leaked:
        names = ", ".join(sorted(t.get_name() for t in leaked))
        for t in leaked:
            t.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*leaked, return_exceptions=True)
        pytest.fail(f"test left tasks running: {names}")


# --- PostgreSQL -------------------------------------------------------------------


def _pg_admin_url() -> str | None:
    return os.environ.get(PG_ENV)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    base = _pg_admin_url()
    if not base:
        pytest.skip(f"no PostgreSQL server: set {PG_ENV} (.ci/run does) to run PostgreSQL tests")
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    try:
        admin = create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            name = f"gsmgw_t_{secrets.token_hex(4)}"
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # server down or URL wrong: skip with the reason
        pytest.skip(f"PostgreSQL at {PG_ENV} unavailable: {type(exc).__name__}: {exc}")
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same store tests on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gsmgw.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def store(store_url: str) -> Iterator[Any]:
    from gsmgw.store import Store

    s = Store(store_url, host="test-host")
    s.migrate()
    try:
        yield s
    finally:
        s.close()
