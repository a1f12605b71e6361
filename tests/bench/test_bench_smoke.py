"""Benchmarks are not tests, but each must still run: a second or so of each."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bench import codec, dispatch, gateway

# Long end-to-end runs: `make test-fast` leaves them out.
pytestmark = pytest.mark.slow


def test_codec_bench_runs() -> None:
    report = codec.run(0.2)
    assert codec.to_markdown(report)


@pytest.mark.timeout(120)
def test_dispatch_bench_runs() -> None:
    report = asyncio.run(dispatch.run([1], [0.05], 0.5, 1))
    [row] = report["results"]
    assert row["messages"] >= 2 and 0 < row["fraction_of_ideal"] <= 1.05
    assert "| 1 |" in dispatch.to_markdown(report)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("which", ["intake", "latency", "scale", "footprint"])
def test_gateway_bench_runs(which: str) -> None:
    result = asyncio.run(gateway.run(which, quick=True))
    assert result
    if which == "intake":
        assert result["fixed_rate_errors"] == 0 and result["bulk_messages_per_s"] > 0
        # Both scenarios ran: new numbers, and one number with earlier messages (the sticky lookup's worst case).
        for scenario in ("fresh", "same"):
            [row] = result["scenarios"][scenario]["rows"]
            assert row["single"]["requests_per_s"] > 0 and row["single"]["non_2xx"] == 0
            assert row["paced"]["errors"] == 0 and row["paced"]["p99_ms"] >= row["paced"]["p50_ms"] > 0
        assert "after 200 earlier messages" in gateway.intake_markdown(result)
        if "rows" in result["kannel"]:  # Kannel installed: its sendsms took every request
            [row] = result["kannel"]["rows"]
            assert row["single"]["requests_per_s"] > 0 and row["single"]["non_2xx"] == 0
    if which == "latency":
        assert result["messages"] == 5 and result["p50_ms"] > 0
    if which == "footprint":
        assert result["idle_rss_mb"] > 0


@pytest.mark.timeout(120)
def test_quirks_bench_runs() -> None:
    from bench import quirks

    report = asyncio.run(quirks.run(3, 0.02))
    first, plain = report["results"]
    assert first["transient_error"] == 321 and first["read_retries"] >= 3 and first["left_in_storage"] == 0
    assert plain["read_retries"] == 0 and first["p99_ms"] > 0
    assert "+CMS ERROR: 321" in quirks.to_markdown(report)


@pytest.mark.postgres
@pytest.mark.timeout(120)
def test_multihost_bench_runs(pg_url: str) -> None:
    from bench import multihost

    report = asyncio.run(multihost.run([1], 1, 0.05, 3, base=pg_url))
    [row] = report["results"]
    assert row["messages"] == 3 and row["fraction_of_ideal"] > 0


@pytest.mark.timeout(180)
def test_prune_during_dispatch_bench_runs(tmp_path: Path) -> None:
    from bench import reports

    out = tmp_path / "prune.json"
    assert reports.main(["--only", "prune", "--prune-rows", "30000", "--messages", "8", "--latency-s", "0.05",
                         "--repeats", "1", "--json", str(out)]) == 0
    prune = json.loads(out.read_text())["prune"]
    assert prune["batch_ms"] == 10.0
    [run] = prune["runs"]["with"]
    assert run["gaps"] >= 4 and run["pruned"]["rows"] > 0  # it pruned while the gateway sent
