"""The e-mail door's throughput (issue 19), against real SMTP on 127.0.0.1.

- ``in``: N mails, one SMTP session (smtplib in a thread), each to one
  ``<number>@<domain>``, into gsmgw's listener; a mail is answered 250 only after
  its SMS is committed, so mails/s = SMS accepted per second.
- ``out``: N ``sms:received`` events already in the outbox, then the forwarder is
  started: mails/s until an aiosmtpd server has all N (one SMTP connection per mail).

    python -m bench.mail --messages 200
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import smtplib
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from gsmgw.config import (
    ApiConfig,
    Config,
    EmailConfig,
    EmailForward,
    EmailListenerConfig,
    SmtpOutConfig,
    StoreConfig,
)
from gsmgw.daemon import Gateway
from gsmgw.domain import EventType

DOMAIN = "sms.bench.test"


async def bench_in(n: int, workdir: Path) -> dict[str, Any]:
    key_file = workdir / "mail.key"
    cfg = Config(api=ApiConfig(listen="127.0.0.1:0"), store=StoreConfig(url=f"sqlite:///{workdir / 'in.db'}"),
                 email=EmailConfig(listener=EmailListenerConfig(
                     enabled=True, port=0, domain=DOMAIN, allowed_senders=("bench@corp.test",),
                     api_key_file=str(key_file))))
    gw = Gateway(cfg, host="bench")
    await gw.start()
    try:
        _, key = await gw.store.call(gw.store.keys.create_api_key, "bench", ["send"])
        key_file.write_text(key)
        port = gw.mail_listener.bound[0][1]

        def run() -> float:
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
                t0 = time.perf_counter()
                for i in range(n):
                    m = EmailMessage()
                    m["From"], m["To"], m["Subject"] = "bench@corp.test", f"+1555{i:07d}@{DOMAIN}", "b"
                    m.set_content(f"benchmark mail {i}")
                    client.send_message(m)
                return time.perf_counter() - t0

        elapsed = await asyncio.to_thread(run)
        rows = await gw.store.call(gw.store.messages.list_messages, limit=n + 1)
        assert len(rows) == n, len(rows)
        return {"mails": n, "seconds": round(elapsed, 3), "per_s": round(n / elapsed, 1)}
    finally:
        await gw.stop()


class _Sink:
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.count += 1
        return "250 OK"


async def bench_out(n: int, workdir: Path) -> dict[str, Any]:
    sink = _Sink()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(sink, hostname="sink", loop=loop), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    base = Config(api=ApiConfig(listen="127.0.0.1:0"), store=StoreConfig(url=f"sqlite:///{workdir / 'out.db'}"))
    try:
        gw = Gateway(base, host="bench")  # no [email] yet: the events wait in the outbox
        await gw.start()
        try:
            await gw.store.call(gw.store.events.ensure_cursor, "email", start="oldest")
            for i in range(n):
                await gw.store.call(gw.store.events.add_event, EventType.SMS_RECEIVED, modem_id="sim1", payload={
                    "id": f"in{i}", "from": f"+1555{i:07d}", "sim": "sim1", "text": f"benchmark sms {i}",
                    "received_at": "2026-11-28T12:00:00Z"})
            cfg = dataclasses.replace(base, email=EmailConfig(
                smtp=SmtpOutConfig(host="127.0.0.1", port=port, security="none", from_address="gw@bench.test"),
                forward=(EmailForward(to=("ops@bench.test",)),), poll_interval_s=0.01))
            t0 = time.perf_counter()
            await gw.reload(cfg)
            while sink.count < n:
                await asyncio.sleep(0.005)
            elapsed = time.perf_counter() - t0
        finally:
            await gw.stop()
    finally:
        server.close()
        await server.wait_closed()
    return {"mails": n, "seconds": round(elapsed, 3), "per_s": round(n / elapsed, 1)}


async def main_async(n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="gsmgw-bench-mail-") as d:
        (Path(d) / "in").mkdir()
        (Path(d) / "out").mkdir()
        return {"in": await bench_in(n, Path(d) / "in"), "out": await bench_out(n, Path(d) / "out")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=200)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    result = asyncio.run(main_async(args.messages))
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
