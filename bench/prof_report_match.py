"""Status-report matching cost (issue 17): one report on a SIM with a long history.

A report names its modem, TP-MR and recipient; the store reads the parts sent on that
modem with that TP-MR within the report window (3 days by default) and keeps those
whose recipient is the report's number. TP-MR has 256 values, so on a busy SIM a
report has many such parts: every 256th part sent in the window is a candidate, and
every 256th part of the whole kept history was read before the index held sent_at.

Builds a SQLite store (durable, synchronous=FULL) holding ``--history`` parts sent
on one SIM to distinct numbers, spread evenly over the last ``--days`` days, with
TP-MR cycling 0..255 as a modem hands them out; then records ``--n`` status reports
of the newest parts (each matches one part, as on a live SIM) and reports the mean
wall and CPU time per report (one durable commit each, fsync included), and the
candidates each report had.

Then it keeps ``--unmatched`` reports that match nothing (another number: a report the
SMSC sent for a message of another gateway, or one whose part was pruned), and times
the look a settle makes for reports that overtook its parts (``match_waiting``, in a
transaction): before migration 0016 that read every unmatched report kept.

    python -m bench.prof_report_match --history 300000 --days 100 --n 500 --unmatched 5000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import bindparam, update

from gsmgw.store import NewMessage, Store
from gsmgw.store import tables as t

WINDOW_S = 3 * 86400.0


def run(history: int, days: float, n: int, unmatched: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="gsmgw-reportmatch-") as tmp:
        store = Store(f"sqlite:///{Path(tmp) / 'reports.db'}")
        try:
            store.migrate()
            now = dt.datetime.now(dt.UTC)
            step = dt.timedelta(days=days) / max(1, history)
            p = t.message_parts
            stamp = (update(p).where(p.c.message_id == bindparam("mid"))
                     .values(state="sent", modem_id="sim1", tp_mr=bindparam("mr"), sent_at=bindparam("at")))
            newest: list[tuple[int, str]] = []
            for i in range(0, history, 2000):
                k = min(2000, history - i)
                numbers = [f"+1555{i + j:07d}" for j in range(k)]
                ids = store.messages.enqueue([NewMessage(x, "x", "gsm7", 1) for x in numbers]).message_ids
                # ids come back in recipient order (enqueue sorts them so): pair them up
                rows = [{"mid": mid, "mr": (i + j) % 256, "at": now - step * (history - i - j)}
                        for j, mid in enumerate(ids)]
                with store.engine.begin() as conn:
                    conn.execute(stamp, rows)
                newest = [((i + j) % 256, numbers[j]) for j in range(k)][-n:]
            in_window = sum(1 for j in range(history) if step * (history - j) <= dt.timedelta(seconds=WINDOW_S))
            w0, c0 = time.perf_counter(), time.process_time()
            matched = 0
            for tp_mr, number in newest:
                res = store.reports.record_status_report(
                    "sim1", tp_mr=tp_mr, recipient=number, status=0, category="delivered", meaning="delivered",
                    scts=None, discharge_at=None, window_s=WINDOW_S, durable=True)
                matched += res.message_id is not None
            done = len(newest)
            out = {"history": history, "days": days, "n": done, "matched": matched,
                   "candidates_per_report": round(in_window / 256, 1),
                   "ms_wall": round((time.perf_counter() - w0) * 1000 / done, 3),
                   "ms_cpu": round((time.process_time() - c0) * 1000 / done, 3)}
            for i in range(unmatched):
                store.reports.record_status_report(
                    f"sim{i % 8}", tp_mr=i % 256, recipient=f"+1666{i:07d}", status=0, category="delivered",
                    meaning="delivered", scts=None, discharge_at=None, window_s=WINDOW_S, durable=False)
            mid = store.messages.enqueue([NewMessage("+15550001111", "x", "gsm7", 1)]).message_ids[0]
            with store.engine.begin() as conn:
                conn.execute(stamp, [{"mid": mid, "mr": 7, "at": now}])
            c0 = time.process_time()
            with store.engine.begin() as conn:
                for _ in range(n):
                    store.reports.match_waiting(conn, mid, WINDOW_S)
            out.update(unmatched=unmatched, settle_lookup_ms_cpu=round((time.process_time() - c0) * 1000 / n, 3))
            return out
        finally:
            store.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.prof_report_match", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--history", type=int, default=300_000)
    ap.add_argument("--days", type=float, default=100.0)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--unmatched", type=int, default=5000)
    args = ap.parse_args(argv)
    print(json.dumps(run(args.history, args.days, args.n, args.unmatched)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
