"""``gsmgw contacts import|export|groups`` as a subprocess on a real SQLite store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _gsmgw(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gsmgw", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=30, check=False)


def test_import_reports_bad_rows_writes_errors_and_exports(tmp_path: Path) -> None:
    cfg = tmp_path / "g.toml"
    cfg.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "g.db"}"\n[api]\ndefault_region = "GB"\n')
    (tmp_path / "a.csv").write_bytes("\ufeffphone;name;city\n07700900001;Ann;Leeds\nbad;Bob;York\n"
                                     "07700900001;Dup;X\n".encode())
    r = _gsmgw("contacts", "import", "a.csv", "-c", str(cfg), "--group", "g1", "--errors", "err.csv", cwd=tmp_path)
    assert r.returncode == 1, r.stderr  # some rows were not imported
    assert "3 rows: 1 created" in r.stdout and "row 3: not a phone number ('bad')" in r.stdout
    assert (tmp_path / "err.csv").read_text().splitlines() == [
        "row,reason,value", "3,not a phone number,bad", "4,duplicate of row 2,+447700900001"]
    r = _gsmgw("contacts", "export", "-c", str(cfg), "--group", "g1", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.splitlines() == [
        "number,name,groups,tags,opted_out,city", "+447700900001,Ann,g1,,,Leeds"]
    r = _gsmgw("contacts", "import", "missing.csv", "-c", str(cfg), cwd=tmp_path)
    assert r.returncode == 2 and "missing.csv" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "b.csv").write_text("who\n+15550100001\n")
    r = _gsmgw("contacts", "import", "b.csv", "-c", str(cfg), cwd=tmp_path)
    assert r.returncode == 2 and "no number column" in r.stderr
