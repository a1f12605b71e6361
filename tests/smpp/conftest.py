"""Fixtures: a store, an SMPP server on 127.0.0.1:0 in front of a fake intake port."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from gsmgw.config import SmppConfig
from gsmgw.smpp import SmppServer
from gsmgw.smpp.accounts import hash_password
from gsmgw.store import Store
from tests.smpp.helpers import FakePort

PASSWORD = "s3cret"


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'gsmgw.db'}", host="test-host")
    s.migrate()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def smpp_cfg() -> SmppConfig:
    return SmppConfig(listen="127.0.0.1:0", bind_timeout_s=5.0, idle_timeout_s=30.0, enquire_link_interval_s=0.0,
                      response_timeout_s=2.0, poll_interval_s=0.05, retry_initial_s=0.1, retry_max_s=0.5)


@pytest.fixture
def port() -> FakePort:
    return FakePort()


@pytest.fixture
def cfg_box(smpp_cfg: SmppConfig) -> dict[str, SmppConfig]:
    """The server reads its config through a callable: tests change it here."""
    return {"cfg": smpp_cfg}


@pytest.fixture
async def server(sqlite_store: Store, cfg_box: dict[str, SmppConfig], port: FakePort) -> AsyncIterator[SmppServer]:
    sqlite_store.smpp.create_account("esme", hash_password(PASSWORD), ["send", "read"])
    srv = SmppServer(lambda: cfg_box["cfg"], sqlite_store, port)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


def with_cfg(box: dict[str, SmppConfig], **changes: Any) -> None:
    box["cfg"] = dataclasses.replace(box["cfg"], **changes)
