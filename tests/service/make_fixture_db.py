"""Make tests/service/fixtures/v0_1_0.sqlite: a database as gsmgw 0.1.0 left it.

gsmgw 0.1.0 shipped schema revision 0001. The database holds what an upgrade
must keep: a queue of messages (normal and high priority, one multipart, one
scheduled), one message a crashed run left ``sending``, a sent one, a failed
one, and an API key. The upgrade test opens it with the current code, which runs
the migrations since, and checks that all of it is there and the queue is sent.

Run from the repository root:  .venv/bin/python -m tests.service.make_fixture_db
The file is committed; run this again only to change what it holds (never after
a schema change: the point is that it keeps the old schema).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

from gsmgw.domain import MessageState
from gsmgw.store import NewMessage, PartResult, Store
from gsmgw.store.migrate import current_revision, upgrade

RELEASE_REVISION = "0001"  # schema of gsmgw 0.1.0
FIXTURE = Path(__file__).with_name("fixtures") / "v0_1_0.sqlite"
# The key is fixed so that the upgrade test can use it.
API_KEY = "gsk_0a1b2c3d_upgrade-fixture-key-not-secret-000000"
MULTIPART_TEXT = "Upgrade test: " + "this text needs more than one part. " * 10  # 3 GSM 7-bit parts


def make(path: Path = FIXTURE) -> dict[str, object]:
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    store = Store(f"sqlite:///{path}", host="old-host")
    try:
        upgrade(store.engine, RELEASE_REVISION)
        store.keys.create_api_key("crm", ["send", "read"], key=API_KEY)
        far = dt.datetime.now(dt.UTC) + dt.timedelta(days=3650)  # still valid whenever the test runs
        queued = store.messages.enqueue([
            NewMessage(to_number="+15550000001", text="queued 1", encoding="gsm7", parts_total=1, valid_until=far),
            NewMessage(to_number="+15550000002", text="queued 2 high", encoding="gsm7", parts_total=1,
                       priority=5, valid_until=far),
            NewMessage(to_number="+447700900003", text=MULTIPART_TEXT, encoding="gsm7", parts_total=3,
                       valid_until=far),
            NewMessage(to_number="+15550000004", text="Grüße ünïcödé", encoding="ucs2", parts_total=1,
                       valid_until=far),
        ]).message_ids
        claim = store.claims.claim_next("sim1", lease_s=60.0)
        assert claim is not None and claim.id == queued[1], "the high-priority message is claimed first"
        store.claims.settle_claim(claim.id, [PartResult(1, MessageState.SENT, tp_mr=7)])
        claim = store.claims.claim_next("sim1", lease_s=60.0)
        assert claim is not None and claim.id == queued[0]
        store.claims.settle_claim(claim.id, [PartResult(1, MessageState.FAILED, error_code="cms:21",
                                                 error_text="short message transfer rejected")])
        sent_id, failed_id = queued[1], queued[0]
        # One claimed and marked 'sending' by a run that then crashed (top priority: claimed next).
        crashed = store.messages.enqueue([NewMessage(to_number="+15550000005", text="in flight at crash",
                                            encoding="gsm7", parts_total=1, priority=10,
                                            valid_until=far)]).message_ids[0]
        # Its lease ran out long ago by the time anyone opens the fixture.
        claim = store.claims.claim_next("sim1", lease_s=0.001)
        assert claim is not None and claim.id == crashed
        store.claims.mark_parts_sending(claim.id, [1], "sim1")
        revision = current_revision(store.engine)
        _check_parts()
    finally:
        store.close()
    # One file, no WAL beside it: the fixture is checked in as a single file.
    import sqlite3

    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode=DELETE")
    info = {"revision": revision, "queued": [queued[2], queued[3]], "sent": sent_id, "failed": failed_id,
            "crashed_sending": crashed}
    path.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def _check_parts() -> None:
    """The part counts written above are what the codec makes of the texts."""
    from gsmgw.sms import encode_submit

    assert len(encode_submit("+447700900003", MULTIPART_TEXT).parts) == 3
    assert encode_submit("+15550000004", "Grüße ünïcödé").encoding == "ucs2"


if __name__ == "__main__":
    print(json.dumps(make(Path(sys.argv[1]) if len(sys.argv) > 1 else FIXTURE), indent=2))
