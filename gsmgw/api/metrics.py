"""Prometheus metrics (prometheus-client), one registry per app."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector


class PoolCollector(Collector):
    """Modem and queue figures, read at scrape time from the pool and a store snapshot."""

    def __init__(self, modems: Callable[[], list[dict[str, Any]]]) -> None:
        self._modems = modems
        self.counts: dict[str, int] = {}

    def collect(self) -> Iterator[Metric]:
        by_state = GaugeMetricFamily("gsmgw_messages", "Outbound messages by state", labels=["state"])
        for state, n in sorted(self.counts.items()):
            by_state.add_metric([state], n)
        yield by_state
        depth = GaugeMetricFamily("gsmgw_queue_depth", "Messages queued or being sent")
        depth.add_metric([], self.counts.get("queued", 0) + self.counts.get("sending", 0))
        yield depth
        up = GaugeMetricFamily("gsmgw_modem_ready", "1 if the modem is READY and enabled", labels=["modem"])
        csq = GaugeMetricFamily("gsmgw_modem_signal_csq", "Signal (+CSQ rssi, 0-31, 99 unknown)", labels=["modem"])
        sent = CounterMetricFamily("gsmgw_modem_sent_parts", "SMS parts sent since start", labels=["modem"])
        failed = CounterMetricFamily("gsmgw_modem_failed_parts", "SMS parts that failed or are unknown",
                                     labels=["modem"])
        for m in self._modems():
            up.add_metric([m["id"]], 1 if m["state"] == "ready" and m["enabled"] else 0)
            if m.get("signal_csq") is not None:
                csq.add_metric([m["id"]], m["signal_csq"])
            sent.add_metric([m["id"]], m["sent_parts"])
            failed.add_metric([m["id"]], m["failed_parts"])
        yield from (up, csq, sent, failed)


class Metrics:
    def __init__(self, modems: Callable[[], list[dict[str, Any]]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.pool = PoolCollector(modems)
        self.registry.register(self.pool)
        self.accepted = Counter("gsmgw_messages_accepted", "Messages accepted through the API",
                                registry=self.registry)
        self.requests = Counter("gsmgw_http_requests", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram(
            "gsmgw_http_request_duration_seconds", "HTTP request latency", ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )
        self.rejected = Counter("gsmgw_api_rejected", "Requests refused for rate or quota", ["reason"],
                                registry=self.registry)

    # The intake service's observer (gsmgw.intake.IntakeObserver): every door's messages count.
    def on_accepted(self, n: int) -> None:
        self.accepted.inc(n)

    def on_rejected(self, reason: str) -> None:
        self.rejected.labels(reason).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


METRICS = web.AppKey("metrics", Metrics)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    start = time.perf_counter()
    status = 500
    try:
        resp = await handler(request)
        status = resp.status
        return resp
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
        m = request.app[METRICS]
        m.requests.labels(request.method, route, str(status)).inc()
        m.latency.labels(route).observe(time.perf_counter() - start)


def content_type() -> str:
    return CONTENT_TYPE_LATEST
