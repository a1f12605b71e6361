"""Fixtures for the emulator tests (helpers live in emu_client.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gsmgw.emulator import Network


@pytest.fixture
async def network() -> AsyncIterator[Network]:
    net = Network(report_delay_s=0.01)
    yield net
    await net.aclose()
