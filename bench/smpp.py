"""SMPP benchmarks: submit_sm per second through one bind, and receipt latency.

Both run against a real ``gsmgw run`` process (SQLite, synchronous=FULL: every
submit_sm_resp follows a durable commit) with ``[smpp] listen`` on 127.0.0.1.
The ESME is this process: one bind, gsmgw's own PDU codec, asyncio.

- **submit**: a transmitter keeps ``window`` submit_sm outstanding for ``seconds``
  (no modems, so the figure is the door + intake + commit); runs ``runs`` times.
- **receipts**: ``gsmgw fake-modem`` modems deliver and report; a transceiver
  submits at a fixed rate with registered_delivery=1 and takes the receipts; the
  latency of each is from the moment gsmgw recorded the status report
  (``status_reports.received_at``) to the deliver_sm reaching the ESME.

    python -m bench.smpp [--quick] [--runs 3] [--seconds 10] [--window 10] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import re
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.gateway import fake_modems
from bench.transcripts import pct
from gsmgw.smpp.accounts import hash_password
from gsmgw.smpp.constants import Command, Status, Tag
from gsmgw.smpp.pdu import Pdu, decode, encode
from gsmgw.store import Store

PY = sys.executable
PASSWORD = "benchpw"


def _write_config(path: Path, db: Path, ports: list[str]) -> None:
    modems = "".join(f'[[modem]]\nid = "sim{i + 1}"\nport = "{p}"\n' for i, p in enumerate(ports))
    path.write_text(
        f'[api]\nlisten = "127.0.0.1:0"\n[store]\nurl = "sqlite:///{db}"\n'
        f'[dispatch]\nsticky_s = 0\n[logging]\nlevel = "info"\n'
        f'[smpp]\nlisten = "127.0.0.1:0"\n{modems}')


class SmppGw:
    """A `gsmgw run` with an SMPP account; its SMPP port comes from its log."""

    def __init__(self, workdir: Path, ports: list[str] | None = None) -> None:
        self.db = workdir / "gsmgw.db"
        self.cfg = workdir / "gsmgw.toml"
        _write_config(self.cfg, self.db, ports or [])
        store = Store(f"sqlite:///{self.db}")
        store.migrate()
        store.smpp.create_account("bench", hash_password(PASSWORD), ["send", "read"])
        store.close()
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0
        self._drain: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            PY, "-m", "gsmgw", "run", "--config", str(self.cfg),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        assert self.proc.stderr is not None
        deadline = time.monotonic() + 60
        while not self.port:
            line = (await asyncio.wait_for(self.proc.stderr.readline(), max(0.1, deadline - time.monotonic())))
            if not line:
                raise RuntimeError("gsmgw exited before SMPP listened")
            m = re.search(rb"SMPP listening on [^ ]+:(\d+)", line)
            if m:
                self.port = int(m.group(1))
        self._drain = asyncio.create_task(self._read_rest())

    async def _read_rest(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while await self.proc.stderr.read(65536):
            pass

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 60)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._drain is not None:
            await self._drain


class Esme:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.seq = reader, writer, 0

    @classmethod
    async def bind(cls, port: int, command: Command) -> Esme:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        e = cls(r, w)
        e.send(Pdu(command, 0, 0, {"system_id": "bench", "password": PASSWORD, "interface_version": 0x34}))
        resp = await e.read()
        if resp.command_status != Status.ROK:
            raise RuntimeError(f"bind refused: {resp.command_status}")
        return e

    def send(self, pdu: Pdu) -> int:
        self.seq += 1
        pdu.sequence_number = self.seq
        self.writer.write(encode(pdu))
        return self.seq

    async def read(self) -> Pdu:
        head = await self.reader.readexactly(16)
        (length,) = struct.unpack(">I", head[:4])
        return decode(head + await self.reader.readexactly(length - 16))

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self.send(Pdu(Command.UNBIND, 0))
            await asyncio.wait_for(self.read(), 2)
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


def _submit(n: int, rd: int = 0) -> Pdu:
    return Pdu(Command.SUBMIT_SM, 0, 0, {
        "source_addr_ton": 5, "source_addr": "Bench", "dest_addr_ton": 1, "dest_addr_npi": 1,
        "destination_addr": f"1555{n % 10_000_000:07d}", "registered_delivery": rd,
        "short_message": f"smpp bench {n}".encode()})


async def submit_run(seconds: float, window: int) -> dict[str, Any]:
    """One run: a fresh gateway, one transmitter bind, ``window`` submits outstanding."""
    with tempfile.TemporaryDirectory(prefix="gsmgw-bench-smpp-") as tmp:
        gw = SmppGw(Path(tmp))
        await gw.start()
        try:
            esme = await Esme.bind(gw.port, Command.BIND_TRANSMITTER)
            sent_at: dict[int, float] = {}
            lat: list[float] = []
            ok = refused = n = 0
            start = time.perf_counter()
            end = start + seconds
            for _ in range(window):
                n += 1
                sent_at[esme.send(_submit(n))] = time.perf_counter()
            while sent_at:
                resp = await esme.read()
                t = time.perf_counter()
                lat.append(t - sent_at.pop(resp.sequence_number))
                if resp.command_status == Status.ROK:
                    ok += 1
                else:
                    refused += 1
                if t < end:
                    n += 1
                    sent_at[esme.send(_submit(n))] = time.perf_counter()
            elapsed = time.perf_counter() - start
            await esme.close()
        finally:
            await gw.stop()
        store = Store(f"sqlite:///{gw.db}")
        stored = sum(store.messages.counts_by_state().values())
        store.close()
    return {"acknowledged": ok, "refused": refused, "stored": stored, "seconds": round(elapsed, 2),
            "submit_per_s": round(ok / elapsed, 1), "resp_p50_ms": round(pct(lat, 0.5) * 1000, 2),
            "resp_p99_ms": round(pct(lat, 0.99) * 1000, 2)}


async def receipt_run(messages: int, rate_per_s: float, modems: int = 2) -> dict[str, Any]:
    """Receipt latency: status report recorded -> deliver_sm at the ESME."""
    with tempfile.TemporaryDirectory(prefix="gsmgw-bench-smpp-") as tmp:
        work = Path(tmp)
        async with fake_modems(work, modems, 0.05) as (ports, _transcripts):
            gw = SmppGw(work, ports)
            await gw.start()
            got: dict[str, float] = {}
            try:
                esme = await Esme.bind(gw.port, Command.BIND_TRANSCEIVER)
                ids: dict[int, str] = {}
                done = asyncio.Event()

                async def reader() -> None:
                    while True:
                        pdu = await esme.read()
                        if pdu.command is Command.DELIVER_SM:
                            rid = pdu.tlv_cstr(Tag.RECEIPTED_MESSAGE_ID)
                            got[str(rid)] = time.time()
                            resp = pdu.response(message_id="")
                            esme.writer.write(encode(resp))
                            if len(got) >= messages:
                                done.set()
                        elif pdu.command is Command.SUBMIT_SM_RESP:
                            ids[pdu.sequence_number] = str(pdu.get("message_id"))
                        elif pdu.command is Command.ENQUIRE_LINK:
                            esme.writer.write(encode(pdu.response()))

                task = asyncio.create_task(reader())
                for i in range(messages):
                    esme.send(_submit(i, rd=1))
                    await asyncio.sleep(1 / rate_per_s)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), 60)
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
                await esme.close()
            finally:
                await gw.stop()
            store = Store(f"sqlite:///{gw.db}")
            reports = {r["message_id"]: r["received_at"] for r in store.reports.list_status_reports(limit=100_000)}
            store.close()
    lat = [got[mid] - reports[mid].timestamp() for mid in got if mid in reports]
    return {"messages": messages, "receipts": len(got), "offered_per_s": rate_per_s,
            "p50_ms": round(pct(lat, 0.5) * 1000, 1), "p99_ms": round(pct(lat, 0.99) * 1000, 1),
            "max_ms": round(max(lat) * 1000, 1) if lat else None}


async def run(*, runs: int = 3, seconds: float = 10.0, window: int = 10, receipts: int = 200,
              receipt_rate_per_s: float = 20.0) -> dict[str, Any]:
    submit_runs = []
    for _ in range(runs):
        submit_runs.append(await submit_run(seconds, window))
    rates = [r["submit_per_s"] for r in submit_runs]
    receipt = await receipt_run(receipts, receipt_rate_per_s)
    return {
        "window": window, "seconds": seconds, "runs": submit_runs,
        "submit_per_s_median": statistics.median(rates), "submit_per_s_min": min(rates),
        "submit_per_s_max": max(rates), "receipt": receipt,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def to_markdown(r: dict[str, Any]) -> str:
    rc = r["receipt"]
    lines = [
        f"`submit_sm` through one transmitter bind with {r['window']} outstanding, {r['seconds']:.0f} s per run, "
        f"{len(r['runs'])} runs (a fresh gateway each; SQLite, synchronous=FULL: each response follows "
        "its commit):",
        "",
        "| run | acknowledged | submit_sm/s | resp p50 ms | resp p99 ms | stored |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for i, x in enumerate(r["runs"], 1):
        lines.append(f"| {i} | {x['acknowledged']} | {x['submit_per_s']} | {x['resp_p50_ms']} | "
                     f"{x['resp_p99_ms']} | {x['stored']} |")
    lines += [
        "",
        f"Median {r['submit_per_s_median']} submit_sm/s [{r['submit_per_s_min']}–{r['submit_per_s_max']}] "
        "(target ≥ 1,000/s).",
        "",
        f"Receipt latency, status report recorded → deliver_sm at the ESME ({rc['receipts']} of "
        f"{rc['messages']} receipts, {rc['offered_per_s']:.0f} submits/s offered, 2 emulated modems): "
        f"p50 {rc['p50_ms']} ms, p99 {rc['p99_ms']} ms, max {rc['max_ms']} ms.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.smpp", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes: checks that it runs")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--window", type=int, default=10)
    ap.add_argument("--receipts", type=int, default=200)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    if args.quick:
        result = asyncio.run(run(runs=1, seconds=1.0, window=args.window, receipts=5, receipt_rate_per_s=20.0))
    else:
        result = asyncio.run(run(runs=args.runs, seconds=args.seconds, window=args.window, receipts=args.receipts))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    print(to_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
