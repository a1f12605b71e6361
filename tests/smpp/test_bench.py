"""The SMPP benchmark must run (a second or so of each part)."""

from __future__ import annotations

import asyncio

import pytest

from bench import smpp

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def test_smpp_bench_runs() -> None:
    result = asyncio.run(smpp.run(runs=1, seconds=0.5, receipts=3))
    (run,) = result["runs"]
    assert run["acknowledged"] > 0 and run["stored"] >= run["acknowledged"] and run["refused"] == 0
    assert result["receipt"]["receipts"] == 3 and result["receipt"]["p50_ms"] > 0
    assert "submit_sm/s" in smpp.to_markdown(result)
