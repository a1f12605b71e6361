"""`gsmgw store copy`: a single host's SQLite data, queue included, moves to PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gsmgw.domain import MessageState
from gsmgw.errors import StoreError
from gsmgw.store import NewMessage, PartResult, Store
from gsmgw.store.copy import copy_store


def _fill(url: str) -> tuple[str, str]:
    s = Store(url, host="old")
    s.migrate()
    queued = s.messages.enqueue([NewMessage("+15551234567", "still queued", "gsm7", 2)]).message_ids[0]
    sent = s.messages.enqueue([NewMessage("+15557654321", "was sent", "gsm7", 1)]).message_ids[0]
    c = s.claims.claim_next("sim1", lease_s=30)
    assert c is not None
    s.claims.mark_parts_sending(c.id, c.pending_seqs, "sim1")
    s.claims.settle_claim(c.id, [PartResult(seq, MessageState.SENT, tp_mr=9) for seq in c.pending_seqs])
    s.reports.record_status_report("sim1", tp_mr=9, recipient="+15551234567", status=0, category="delivered",
                           meaning="ok", scts=None, discharge_at=None, window_s=3600)
    s.keys.create_api_key("crm", ["send"])
    s.close()
    return queued, sent


@pytest.mark.postgres
def test_copy_sqlite_to_postgres_keeps_the_queue(tmp_path: Path, pg_url: str) -> None:
    src = f"sqlite:///{tmp_path / 'old.db'}"
    _fill(src)
    counts = copy_store(src, pg_url)
    assert counts["messages"] == 2 and counts["message_parts"] == 3 and counts["status_reports"] == 1
    dst = Store(pg_url, host="new")
    try:
        states = sorted(m["state"] for m in dst.messages.list_messages())
        assert states[0] == "queued"
        # The copied queue is dispatchable, and serial ids continue past the copied ones.
        got = dst.claims.claim_next("sim9", lease_s=30)
        assert got is not None and got.text in ("still queued", "was sent")
        dst.reports.record_status_report("sim1", tp_mr=1, recipient="+1", status=0, category="delivered",
                                 meaning="", scts=None, discharge_at=None, window_s=60)
        assert len(dst.reports.list_status_reports()) == 2
        dst.events.add_event("test:event")
    finally:
        dst.close()
    with pytest.raises(StoreError, match="not empty"):
        copy_store(src, pg_url)


def test_copy_sqlite_to_sqlite_by_cli(tmp_path: Path) -> None:
    src = f"sqlite:///{tmp_path / 'old.db'}"
    dst = f"sqlite:///{tmp_path / 'new.db'}"
    _fill(src)
    out = subprocess.run([sys.executable, "-m", "gsmgw", "store", "copy", "--from", src, "--to", dst],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "messages" in out.stdout
    again = subprocess.run([sys.executable, "-m", "gsmgw", "store", "copy", "--from", src, "--to", dst],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "not empty" in again.stderr
