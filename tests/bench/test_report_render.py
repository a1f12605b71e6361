"""``python -m bench --only PART`` updates that part of bench/RESULTS.md and keeps the others."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import bench.__main__ as bench_main

SAVED = Path(bench_main.__file__).parent / "results"


def test_a_run_of_one_part_keeps_every_other_saved_part_in_the_report(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    results = tmp_path / "results"
    results.mkdir()
    for name in ("codec", "intake", "pinned"):
        shutil.copy(SAVED / f"{name}.json", results / f"{name}.json")
    codec = json.loads((SAVED / "codec.json").read_text())["result"]

    def run_part(name: str, quick: bool) -> dict[str, Any]:
        assert name == "codec" and not quick
        return codec  # the saved figures, as if measured again (a real run takes 10 s)

    monkeypatch.setattr(bench_main, "run_part", run_part)
    out = tmp_path / "RESULTS.md"
    assert bench_main.main(["--only", "codec", "--results-dir", str(results), "--out", str(out)]) == 0
    report = out.read_text()
    assert "## API intake" in report and "## Utilisation with the gateway pinned to one core" in report
    assert "## PDU codec" in report
    saved = json.loads((results / "codec.json").read_text())
    assert saved["meta"]["command"] == "python -m bench --only codec"  # the new run's, saved for --render
    assert report == f"{bench_main.render(results)}\n"
    assert bench_main.render(tmp_path / "nothing") is None
