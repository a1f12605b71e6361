"""Smoke test of the codec benchmark (bench/codec.py)."""

from __future__ import annotations

from bench import codec


def test_bench_runs_and_reports_every_library() -> None:
    report = codec.run(0.6)
    libs = {r["library"] for r in report["results"]}
    assert libs == {"gsmgw", "python-gammu", "python-gsmmodem-new"}
    ours = [r for r in report["results"] if r["library"] == "gsmgw"]
    assert len(ours) == len(codec.WORKLOADS)
    assert all(r["error"] is None and r["encode_per_s"] > 0 and r["decode_per_s"] > 0 for r in ours)
    table = codec.to_markdown(report)
    assert table.startswith("| library |") and table.count("\n") == len(report["results"]) + 1
