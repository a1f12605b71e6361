"""Sticky-SIM lookup cost (issue 17): one enqueue to a number with a long history.

Builds a SQLite store (durable, synchronous=FULL) holding ``--history`` messages
already sent to one number (and as many to other numbers), then times
``--n`` single-message enqueues to that number with the sticky window on (7 days),
and as many to fresh numbers; reports the mean wall and CPU time per enqueue
(one durable commit each, fsync included).

    python -m bench.prof_sticky --history 10000 --n 500
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import update

from gsmgw.store import NewMessage, Store
from gsmgw.store import tables as t


def run(history: int, n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="gsmgw-sticky-") as tmp:
        store = Store(f"sqlite:///{Path(tmp) / 'sticky.db'}")
        try:
            store.migrate()
            hot = "+15550001111"
            for i in range(0, history, 1000):
                k = min(1000, history - i)
                store.messages.enqueue([NewMessage(hot, f"otp {i + j}", "gsm7", 1) for j in range(k)])
                store.messages.enqueue([NewMessage(f"+1555{i + j:07d}", "x", "gsm7", 1) for j in range(k)])
            sent = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
            with store.engine.begin() as conn:
                conn.execute(update(t.messages).values(state="sent", modem_id="sim1", sent_at=sent))
            out: dict[str, float] = {"history": history, "n": n}
            for label, number in (("same_number", lambda i: hot), ("fresh_numbers", lambda i: f"+1666{i:07d}")):
                w0, c0 = time.perf_counter(), time.process_time()
                for i in range(n):
                    store.messages.enqueue([NewMessage(number(i), "code 1234", "gsm7", 1)],
                                           sticky_s=7 * 86400.0)
                out[f"{label}_ms_wall"] = round((time.perf_counter() - w0) * 1000 / n, 3)
                out[f"{label}_ms_cpu"] = round((time.process_time() - c0) * 1000 / n, 3)
            # The lookup alone, without the commit.
            since = dt.datetime.now(dt.UTC) - dt.timedelta(days=7)
            c0 = time.process_time()
            for _ in range(n):
                store.messages.last_sims({hot}, since)
            out["lookup_ms_cpu"] = round((time.process_time() - c0) * 1000 / n, 3)
            return out
        finally:
            store.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.prof_sticky", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--history", type=int, default=10_000)
    ap.add_argument("--n", type=int, default=500)
    args = ap.parse_args(argv)
    print(json.dumps(run(args.history, args.n)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
