"""MQTT door latencies against a real broker (issue 19).

An in-process gateway (SQLite) on ``gsmgw fake-modem`` modems, and this process as
the MQTT client (aiomqtt) on the same broker:

- **command**: ``{base}/send`` published -> its reply on the response topic (the
  door, the intake service and the durable commit), one at a time, ``count`` times;
- **event**: the outbox event's ``created_at`` (the commit of ``sms:sent``) -> the
  event reaching this subscriber (read from the outbox, rendered, PUBACKed).

    python -m bench.mqtt [--broker 127.0.0.1:1883] [--count 50] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import secrets
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiomqtt

from bench.gateway import fake_modems
from bench.transcripts import pct
from gsmgw.config import ApiConfig, Config, DispatchConfig, ModemConfig, MqttConfig, StoreConfig
from gsmgw.daemon import Gateway


async def one_run(host: str, port: int, count: int) -> dict[str, Any]:
    tag = secrets.token_hex(4)
    base = f"gsmgwbench/{tag}"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        async with fake_modems(work, 1, 0.0) as (ports, _transcripts):
            cfg = Config(
                api=ApiConfig(listen="127.0.0.1:0"),
                store=StoreConfig(url=f"sqlite:///{work / 'gsmgw.db'}"),
                dispatch=DispatchConfig(poll_interval_s=0.2),
                modem=(ModemConfig(id="sim1", port=ports[0]),),
                mqtt=MqttConfig(url=f"mqtt://{host}:{port}", base_topic=base, discovery_prefix=f"habench_{tag}",
                                client_id=f"gsmgw-bench-{tag}", commands=True,
                                api_key_file=str(work / "key"), state_interval_s=30.0),
            )
            gw = Gateway(cfg, host="bench", create_store=True)
            await gw.start()
            try:
                _, key = await gw.store.call(gw.store.keys.create_api_key, "bench", ["send"])
                (work / "key").write_text(key)
                async with aiomqtt.Client(host, port, protocol=aiomqtt.ProtocolVersion.V5,
                                          socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)) as c:
                    await c.subscribe(f"{base}/send/response", qos=1)
                    await c.subscribe(f"{base}/events/sms/sent", qos=1)
                    while not gw.mqtt.status()["connected"]:
                        await asyncio.sleep(0.05)
                    replies: dict[str, float] = {}
                    events: list[float] = []
                    sent_ids: set[str] = set()

                    async def reader() -> None:
                        async for m in c.messages:
                            now = time.monotonic()
                            body = json.loads(m.payload)  # type: ignore[arg-type]
                            if m.topic.matches(f"{base}/send/response"):
                                replies[str(body["id"])] = now
                            else:
                                created = dt.datetime.fromisoformat(body["created_at"].replace("Z", "+00:00"))
                                events.append((dt.datetime.now(dt.UTC) - created).total_seconds())
                                sent_ids.add(body["data"]["message_id"])

                    task = asyncio.create_task(reader())
                    rtt: list[float] = []
                    for i in range(count):
                        t0 = time.monotonic()
                        await c.publish(f"{base}/send", json.dumps({"id": i, "to": "+447700900123",
                                                                    "text": f"bench {i}"}), qos=1)
                        while str(i) not in replies:
                            await asyncio.sleep(0.001)
                        rtt.append(replies[str(i)] - t0)
                    deadline = time.monotonic() + 60
                    while len(events) < count and time.monotonic() < deadline:
                        await asyncio.sleep(0.05)
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
            finally:
                await gw.stop()
    return {"command_ms": [x * 1000 for x in rtt], "event_ms": [x * 1000 for x in events]}


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": round(pct(values, 0.5), 2), "p95": round(pct(values, 0.95), 2),
            "max": round(max(values), 2) if values else float("nan"),
            "mean": round(statistics.fmean(values), 2) if values else float("nan")}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker", default="127.0.0.1:1883")
    ap.add_argument("--count", type=int, default=50)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    host, _, port = args.broker.rpartition(":")
    results = []
    for r in range(args.runs):
        res = await one_run(host, int(port), args.count)
        row = {"run": r + 1, "command": summary(res["command_ms"]), "event": summary(res["event_ms"])}
        results.append(row)
        print(json.dumps(row))
    for kind in ("command", "event"):
        p50s = sorted(r[kind]["p50"] for r in results)
        print(f"{kind} p50 ms over {len(p50s)} runs: min {p50s[0]} median {statistics.median(p50s)} max {p50s[-1]}")


if __name__ == "__main__":
    asyncio.run(main())

