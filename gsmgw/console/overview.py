"""The overview: one tile per SIM, the queue, throughput charts, delivery figures,
recent errors; kept current by a Server-Sent Events stream."""

from __future__ import annotations

import time

from aiohttp import web

from gsmgw.console.core import (
    KEY_RECHECK_S,
    SESSION_COOKIE,
    console_of,
    needs,
    render,
    render_fragment,
    request_session,
    secure,
)
from gsmgw.console.fmt import iso
from gsmgw.console.live import TILES_EVERY_S, sse
from gsmgw.waits import wait_event

HEARTBEAT_S = 15.0


@needs("read")
async def overview(request: web.Request) -> web.StreamResponse:
    c = console_of(request)
    tiles = await c.live.tiles()
    stats = await c.live.stats()
    return render(request, "overview.html", {"section": "overview", **tiles, **stats})


@needs("read", rate=False)
async def charts(request: web.Request) -> web.StreamResponse:
    """The chart series as JSON (console.js draws them with uPlot)."""
    stats = await console_of(request).live.stats()
    return web.json_response({"hour": stats["hour"], "day": stats["day"], "at": iso(stats["at"])})


@needs("read", rate=False)
async def events(request: web.Request) -> web.StreamResponse:
    """GET /ui/events: the overview's fragments whenever they change."""
    c = console_of(request)
    token = request.cookies.get(SESSION_COOKIE)
    session = request_session(request)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                       "X-Accel-Buffering": "no"})
    secure(resp)
    await resp.prepare(request)
    last: dict[str, str] = {}
    last_write = time.monotonic()
    try:
        await resp.write(b"retry: 3000\n\n")  # reconnect after 3 s if the stream breaks
        while not c.closing.is_set():
            # The stream does not keep a session alive: idle expiry still applies.
            if c.sessions.get(token, touch=False) is None:
                await resp.write(b"event: signedout\ndata: \n\n")
                break
            if c.sessions.clock() - session.checked_at > KEY_RECHECK_S:
                if not await c.q.key_active(session.caller.id):
                    c.sessions.drop_key(session.caller.id)
                    await resp.write(b"event: signedout\ndata: \n\n")
                    break
                session.checked_at = c.sessions.clock()
            tiles = await c.live.tiles()
            stats = await c.live.stats()
            for name, template, data in (("tiles", "_tiles.html", tiles), ("queue", "_queue.html", tiles),
                                         ("stats", "_stats.html", stats)):
                html = render_fragment(request, template, data)
                if last.get(name) != html:
                    await resp.write(sse(name, html))
                    last[name] = html
                    last_write = time.monotonic()
            if time.monotonic() - last_write > HEARTBEAT_S:
                await resp.write(b": keep-alive\n\n")
                last_write = time.monotonic()
            await wait_event(c.closing, TILES_EVERY_S)
    except ConnectionError:
        pass  # the browser went away
    return resp


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/", overview)
    r.add_get("/events", events)
    r.add_get("/charts.json", charts)


__all__ = ["add_routes"]
