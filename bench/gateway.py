"""Gateway benchmarks: API intake, dispatch latency, queue scale, footprint.

Everything runs against a real ``gsmgw run`` process (SQLite with durable
commits, synchronous=FULL) on 127.0.0.1, with ``gsmgw fake-modem`` processes as
the modems; the load comes from another process (wrk for the single-request
maximum, an aiohttp client for fixed-rate latency and bulk).

    python -m bench.gateway intake|latency|scale|footprint [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from bench.transcripts import gaps_s, marks, pct, walls
from gsmgw.store import NewMessage, Store

PY = sys.executable


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write_config(path: Path, db: Path, port: int, ports: list[str], *, latency_s: float = 0.0) -> None:
    modems = "".join(
        f'[[modem]]\nid = "sim{i + 1}"\nport = "{p}"\nsend_timeout_s = {latency_s + 10}\n'
        for i, p in enumerate(ports)
    )
    path.write_text(
        f'[api]\nlisten = "127.0.0.1:{port}"\nmax_body_bytes = 4194304\n'
        f'[store]\nurl = "sqlite:///{db}"\n'
        f'[dispatch]\nsticky_s = 0\ndelivery_reports = false\n[logging]\nlevel = "warning"\n{modems}'
    )


class Gw:
    """A `gsmgw run` subprocess with its own API key."""

    def __init__(self, workdir: Path, ports: list[str] | None = None, *, latency_s: float = 0.0) -> None:
        self.workdir = workdir
        self.db = workdir / "gsmgw.db"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cfg = workdir / "gsmgw.toml"
        _write_config(self.cfg, self.db, self.port, ports or [], latency_s=latency_s)
        self.key = subprocess.run(
            [PY, "-m", "gsmgw", "keys", "create", "bench", "--scope", "send,read,admin", "--config", str(self.cfg)],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout.strip()
        self.proc: asyncio.subprocess.Process | None = None
        self.started_at = 0.0

    async def start(self) -> None:
        self.started_at = time.time()
        self.proc = await asyncio.create_subprocess_exec(
            PY, "-m", "gsmgw", "run", "--config", str(self.cfg),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        async with aiohttp.ClientSession() as s:
            for _ in range(600):
                with contextlib.suppress(aiohttp.ClientError):
                    async with s.get(self.url + "/readyz") as r:
                        if r.status == 200:
                            return
                await asyncio.sleep(0.05)
        raise RuntimeError("gateway did not start")

    async def stop(self) -> None:
        if self.proc and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 60)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}

    def rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_s(self) -> float:
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.asynccontextmanager
async def fake_modems(workdir: Path, count: int, latency_s: float) -> AsyncIterator[tuple[list[str], Path]]:
    ports, transcripts = workdir / "ports", workdir / "transcripts"
    proc = await asyncio.create_subprocess_exec(
        PY, "-m", "gsmgw", "fake-modem", "--count", str(count), "--dir", str(ports), "--latency-s", str(latency_s),
        "--report-delay-s", "0.05", "--transcript-dir", str(transcripts),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        links = [ports / f"ttyGSM{i}" for i in range(count)]
        for _ in range(600):
            if all(p.exists() for p in links):
                break
            await asyncio.sleep(0.05)
        else:
            raise RuntimeError("fake-modem did not start")
        yield [str(p) for p in links], transcripts
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


async def _wait_ready(gw: Gw, n: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession(headers=gw.headers) as s:
        while time.monotonic() < deadline:
            async with s.get(gw.url + "/api/v1/status") as r:
                if (await r.json())["modems_ready"] >= n:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError("modems not ready")


# --- intake -----------------------------------------------------------------------

WRK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, nil, nil, string.format('{"to": "+1555%%07d", "text": "intake %%d"}', counter %% 9999999, counter))
end
"""


async def intake(seconds: float, workdir: Path) -> dict[str, Any]:
    gw = Gw(workdir)
    await gw.start()
    out: dict[str, Any] = {}
    try:
        # 1. Single-message requests, as many as the server takes (wrk, one thread, 32 connections).
        wrk = shutil.which("wrk")
        if wrk:
            lua = workdir / "post.lua"
            lua.write_text(WRK_LUA % gw.key)
            res = await asyncio.to_thread(
                subprocess.run,
                [wrk, "-t1", "-c32", f"-d{max(1, int(seconds))}s", "--latency", "-s", str(lua),
                 gw.url + "/api/v1/messages"],
                capture_output=True, text=True, timeout=seconds + 60,
            )
            text = res.stdout
            rps = float(next(ln.split()[1] for ln in text.splitlines() if ln.startswith("Requests/sec")))
            non2xx = next((int(ln.split()[-1]) for ln in text.splitlines() if "Non-2xx" in ln), 0)
            out["single_requests_per_s"] = round(rps, 1)
            out["single_non_2xx"] = non2xx
            out["single_tool"] = "wrk -t1 -c32"
        # 2. Fixed offered rate: 100 requests/s, latency of each.
        rate = 100.0
        lat: list[float] = []
        statuses: list[int] = []
        async with aiohttp.ClientSession(headers=gw.headers) as s:

            async def one(i: int) -> None:
                t0 = time.perf_counter()
                async with s.post(gw.url + "/api/v1/messages",
                                  json={"to": f"+1556{i:07d}", "text": f"rate {i}"}) as r:
                    await r.read()
                    statuses.append(r.status)
                lat.append(time.perf_counter() - t0)

            tasks = []
            start = time.perf_counter()
            n = int(rate * seconds)
            for i in range(n):
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(i)))
            await asyncio.gather(*tasks)
            out["fixed_rate_per_s"] = rate
            out["fixed_rate_p50_ms"] = round(pct(lat, 0.5) * 1000, 2)
            out["fixed_rate_p99_ms"] = round(pct(lat, 0.99) * 1000, 2)
            out["fixed_rate_errors"] = sum(1 for st in statuses if st != 202)
            # 3. Bulk: 1,000 recipients per request, two clients.
            per_req = 1000
            sent = 0
            deadline = time.perf_counter() + seconds
            t0 = time.perf_counter()

            async def bulk_client(c: int) -> None:
                nonlocal sent
                i = 0
                while time.perf_counter() < deadline:
                    body = {"to": [f"+1557{c}{i % 1000:03d}{j:03d}" for j in range(per_req)], "text": "bulk"}
                    async with s.post(gw.url + "/api/v1/messages", json=body) as r:
                        await r.read()
                        if r.status == 202:
                            sent += per_req
                    i += 1

            await asyncio.gather(bulk_client(1), bulk_client(2))
            out["bulk_messages_per_s"] = round(sent / (time.perf_counter() - t0), 1)
    finally:
        await gw.stop()
    return out


# --- dispatch latency -----------------------------------------------------------------


async def latency(n: int, workdir: Path) -> dict[str, Any]:
    """HTTP reply → AT+CMGS on an idle emulated modem."""
    async with fake_modems(workdir, 1, 0.005) as (ports, transcripts):
        gw = Gw(workdir, ports, latency_s=0.005)
        await gw.start()
        replies: list[float] = []
        try:
            await _wait_ready(gw, 1)
            async with aiohttp.ClientSession(headers=gw.headers) as s:
                for i in range(n):
                    async with s.post(gw.url + "/api/v1/messages", json={"to": f"+1558{i:07d}", "text": "lat"}) as r:
                        body = await r.json()
                        replies.append(time.time())
                    # Wait until it is sent so that the modem is idle for the next one.
                    for _ in range(2000):
                        async with s.get(gw.url + f"/api/v1/messages/{body['id']}") as r2:
                            if (await r2.json())["state"] in ("sent", "delivered", "failed", "unknown"):
                                break
                        await asyncio.sleep(0.005)
                    await asyncio.sleep(0.02)
        finally:
            await gw.stop()
    cmgs = walls(transcripts, "cmd")
    lats = [(c - r) * 1000 for r, c in zip(replies, cmgs, strict=False)]
    return {"messages": len(lats), "p50_ms": round(pct(lats, 0.5), 2), "p99_ms": round(pct(lats, 0.99), 2),
            "max_ms": round(max(lats), 2) if lats else None}


# --- queue scale ----------------------------------------------------------------------------


def _fill(db_url: str, n: int, chunk: int = 10_000) -> float:
    t0 = time.perf_counter()
    # Setup, not measured: no fsync per batch while filling.
    store = Store(db_url, sqlite_synchronous="OFF")
    store.migrate()
    try:
        for i in range(0, n, chunk):
            store.messages.enqueue([NewMessage(f"+1559{j:07d}", f"queued {j}", "gsm7", 1, priority=-5,
                                      delivery_report=False) for j in range(i, min(n, i + chunk))])
    finally:
        store.close()
    return time.perf_counter() - t0


async def scale_one(queued: int, sends: int, workdir: Path, modems: int = 4, latency_s: float = 0.05) -> dict[str, Any]:
    # Measure on at most half the queue: the rest is still queued for the restart.
    sends = min(sends, queued // 2)
    async with fake_modems(workdir, modems, latency_s) as (ports, transcripts):
        gw = Gw(workdir, ports, latency_s=latency_s)
        fill_s = await asyncio.to_thread(_fill, f"sqlite:///{gw.db}", queued)
        await gw.start()
        try:
            while len(walls(transcripts, "cmd")) < sends:
                await asyncio.sleep(0.2)
        finally:
            await gw.stop()
        sent_at = walls(transcripts, "cmd")[:sends]
        rate = (len(sent_at) - 1) / (sent_at[-1] - sent_at[0]) if len(sent_at) > 1 else float("nan")
        gaps = gaps_s([marks(p) for p in sorted(transcripts.glob("*"))])
        # Restart with the queue still (almost) full: time from process start to the first send.
        before = len(walls(transcripts, "cmd"))
        await gw.start()
        try:
            while len(walls(transcripts, "cmd")) <= before:
                await asyncio.sleep(0.01)
            first = walls(transcripts, "cmd")[before]
            restart_s = first - gw.started_at
        finally:
            await gw.stop()
    return {"queued": queued, "fill_s": round(fill_s, 1), "modems": modems, "latency_s": latency_s,
            "dispatch_per_s": round(rate, 1), "gap_p50_ms": round(pct(gaps, 0.5) * 1000, 2),
            "gap_p99_ms": round(pct(gaps, 0.99) * 1000, 2), "first_send_after_restart_s": round(restart_s, 2)}


async def scale(sizes: list[int], sends: int, workdir: Path) -> dict[str, Any]:
    rows = [await scale_one(n, sends, workdir / f"q{n}") for n in sizes]
    out: dict[str, Any] = {"rows": rows}
    if len(rows) >= 2:
        out["rate_ratio_large_over_small"] = round(rows[-1]["dispatch_per_s"] / rows[0]["dispatch_per_s"], 3)
    return out


# --- footprint ------------------------------------------------------------------------------


async def footprint(modems: int, messages: int, workdir: Path) -> dict[str, Any]:
    async with fake_modems(workdir, modems, 0.05) as (ports, transcripts):
        gw = Gw(workdir, ports, latency_s=0.05)
        await gw.start()
        try:
            await _wait_ready(gw, modems)
            await asyncio.sleep(2.0)
            idle_rss = gw.rss_mb()
            cpu0 = gw.cpu_s()
            sent0 = len(walls(transcripts, "cmd"))
            peak = idle_rss
            async with aiohttp.ClientSession(headers=gw.headers) as s:
                for i in range(0, messages, 500):
                    body = {"to": [f"+1560{j:07d}" for j in range(i, min(messages, i + 500))], "text": "load"}
                    async with s.post(gw.url + "/api/v1/messages", json=body) as r:
                        await r.read()
                while len(walls(transcripts, "cmd")) - sent0 < messages:
                    peak = max(peak, gw.rss_mb())
                    await asyncio.sleep(0.25)
            cpu = gw.cpu_s() - cpu0
        finally:
            await gw.stop()
    return {"modems": modems, "idle_rss_mb": round(idle_rss, 1), "load_peak_rss_mb": round(peak, 1),
            "messages": messages, "cpu_ms_per_message": round(cpu / messages * 1000, 3)}


# --- entry ----------------------------------------------------------------------------------

SIZES = {
    "intake": {"full": {"seconds": 10}, "quick": {"seconds": 1}},
    "latency": {"full": {"n": 200}, "quick": {"n": 5}},
    "scale": {"full": {"sizes": [1_000, 1_000_000], "sends": 2000}, "quick": {"sizes": [200], "sends": 20}},
    "footprint": {"full": {"modems": 16, "messages": 2000}, "quick": {"modems": 2, "messages": 20}},
}


async def run(which: str, *, quick: bool = False) -> dict[str, Any]:
    params = SIZES[which]["quick" if quick else "full"]
    with tempfile.TemporaryDirectory(prefix=f"gsmgw-bench-{which}-") as tmp:
        work = Path(tmp)
        if which == "intake":
            return await intake(params["seconds"], work)
        if which == "latency":
            return await latency(params["n"], work)
        if which == "scale":
            return await scale(params["sizes"], params["sends"], work)
        if which == "footprint":
            return await footprint(params["modems"], params["messages"], work)
    raise ValueError(which)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.gateway", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("which", choices=sorted(SIZES))
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    result = asyncio.run(run(args.which, quick=args.quick))
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

