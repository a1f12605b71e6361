"""Reply linking cost (issue 17): an inbound SMS looks up the last message sent to its sender.

Every inbound SMS is linked to the message it answers (``in_reply_to``: the last one
sent to the sender within ``inbound.reply_window_s``), in the store's writer thread,
where sends wait behind it. Builds a SQLite store holding ``--history`` messages to
distinct numbers inside the window, then times ``--n`` look-ups for three senders:
one never written to (the common case of an SMS from a stranger), one written to,
in the same international rendering, and one written to, sent national with the
region set.

    python -m bench.prof_reply_link --history 100000 --n 50
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

from gsmgw.store import NewMessage, Store


def run(history: int, n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="gsmgw-replylink-") as tmp:
        store = Store(f"sqlite:///{Path(tmp) / 'reply.db'}")
        try:
            store.migrate()
            for i in range(0, history, 5000):
                store.messages.enqueue([NewMessage(f"+4477009{i + j:05d}", "x", "gsm7", 1)
                                        for j in range(min(5000, history - i))])
            store.inbound.region = "GB"
            since = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
            out: dict[str, float] = {"history": history, "n": n}
            senders = (("stranger", "+15559990000"), ("known_e164", "+447700900123"), ("known_national", "07700900123"))
            with store.engine.connect() as conn:
                for label, sender in senders:
                    c0 = time.process_time()
                    for _ in range(n):
                        store.inbound._last_outbound(conn, sender, "sim1", since)
                    out[f"{label}_ms_cpu"] = round((time.process_time() - c0) * 1000 / n, 3)
            return out
        finally:
            store.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.prof_reply_link", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--history", type=int, default=100_000)
    ap.add_argument("--n", type=int, default=50)
    args = ap.parse_args(argv)
    print(json.dumps(run(args.history, args.n)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
