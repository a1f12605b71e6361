"""Cost of the message counts behind ``GET /api/v1/status`` and ``/metrics`` (issue 17).

Builds a SQLite store holding ``--messages`` kept messages (2,000 queued through the
real enqueue, the rest copies of them marked delivered, as a store with a long
retention holds them), then calls ``counts_by_state`` ``--n`` times, as monitoring
scraping every ``--scrape-s`` seconds would, and reports the first (full) count, the
mean of the others, and the CPU share such scraping costs.

    python -m bench.prof_counts --messages 1000000 --n 20 --scrape-s 15
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from gsmgw.store import NewMessage, Store
from gsmgw.store import messages as repo


def run(messages: int, n: int, scrape_s: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="gsmgw-counts-") as tmp:
        path = Path(tmp) / "counts.db"
        store = Store(f"sqlite:///{path}")
        try:
            store.migrate()
            seed = min(2000, messages)
            store.messages.enqueue([NewMessage(f"+1555{i:07d}", "x", "gsm7", 1) for i in range(seed)])
            db = sqlite3.connect(path)
            cols = [r[1] for r in db.execute("PRAGMA table_info(messages)")]
            copy = ", ".join("id || '-' || :k" if c == "id" else "'delivered'" if c == "state" else c for c in cols)
            have, k = seed, 0
            while have < messages:
                take = min(have, messages - have)
                db.execute(f"INSERT INTO messages ({', '.join(cols)}) SELECT {copy} FROM messages "
                           f"LIMIT {take}", {"k": k})
                db.commit()
                have, k = have + take, k + 1
            db.close()
            first = time.process_time()
            counts = store.messages.counts_by_state()
            first = time.process_time() - first
            t0 = time.process_time()
            for _ in range(n):
                store.messages.counts_by_state()
            rest = (time.process_time() - t0) / n
            # Scraping every scrape_s: one full count per reuse window, the live count otherwise.
            window_s = repo.count_reuse_s(first)
            scrapes_per_count = max(1.0, window_s / scrape_s)
            share = (first + rest * (scrapes_per_count - 1)) / scrapes_per_count / scrape_s
            return {"messages": sum(counts.values()), "full_count_ms_cpu": round(first * 1000, 2),
                    "reused_count_ms_cpu": round(rest * 1000, 3), "reuse_window_s": round(window_s, 1),
                    "cpu_share_at_scrape_interval": round(share, 5), "scrape_s": scrape_s}
        finally:
            store.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.prof_counts", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--scrape-s", type=float, default=15.0)
    args = ap.parse_args(argv)
    print(json.dumps(run(args.messages, args.n, args.scrape_s)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
