"""The console over plain HTTP against a real gateway (emulated modems on ptys):
sign-in and sessions, CSRF, scopes, rate limits, escaping, assets, the live stream."""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import re
import time
from pathlib import Path

import aiohttp
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gsmgw.config import InboundConfig, WebhooksConfig, WebhookSubscription
from gsmgw.console.core import CONSOLE, Console
from gsmgw.console.static import Assets
from tests.console.conftest import ConsoleEnv, start_env, stop_env
from tests.inbound.helpers import wait_until

XSS = [
    "<script>window.__xss=1</script>",
    "<img src=x onerror=\"window.__xss=2\">",
    "<a href=\"javascript:window.__xss=3\">tap me</a>",
]


async def test_signin_session_cookie_and_headers(env: ConsoleEnv, http: aiohttp.ClientSession) -> None:
    c = env.client(http)
    root = await c.get("/")
    assert root.status == 302 and root.headers["Location"] == "/ui/"
    page = await c.get("/ui/")
    assert page.status == 303 and page.headers["Location"].startswith("/ui/login")
    login = await c.get("/ui/login")
    assert login.status == 200
    csp = login.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    assert login.headers["X-Content-Type-Options"] == "nosniff"
    assert login.headers["Cache-Control"] == "no-store"
    assert "<script>" not in login.text  # no inline script anywhere
    assert not re.search(r"\son[a-z]+=", login.text)  # no inline event handler

    wrong = await c.login("gsk_00000000_not-a-key-at-all")
    assert wrong.status == 401 and "not valid" in wrong.text
    assert "gsmgw_session" not in wrong.headers.get("Set-Cookie", "")

    ok = await c.login(env.keys["admin"])
    assert ok.status == 303 and ok.headers["Location"] == "/ui/"
    cookie = next(v for v in ok.headers.getall("Set-Cookie") if v.startswith("gsmgw_session="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/ui/" in cookie
    assert "Secure" not in cookie  # plain HTTP here; under TLS it is Secure (request.secure)
    assert env.keys["admin"] not in cookie and env.keys["admin"].split("_", 2)[2] not in cookie
    for path in ("/ui/", "/ui/messages", "/ui/batches", "/ui/conversations", "/ui/compose", "/ui/modems",
                 "/ui/webhooks", "/ui/keys"):
        p = await c.get(path)
        assert p.status == 200, (path, p.text[:300])
        assert env.keys["admin"] not in p.text
        assert 'id="tile-sim1"' in p.text or path != "/ui/"
    # The sign-in form itself refuses a post without its own token (login CSRF).
    forged = await c.post("/ui/login", {"key": env.keys["admin"]}, csrf=False)
    assert forged.status == 403

    out = await c.post("/ui/logout")
    assert out.status == 303 and "signed-out" in out.headers["Location"]
    again = await c.get("/ui/messages")
    assert again.status == 303 and again.headers["Location"].startswith("/ui/login")


def _console_of(env: ConsoleEnv) -> Console:
    assert env.gw.api is not None
    (sub,) = [r for r in env.gw.api.app.router.resources() if isinstance(r, web.PrefixedSubAppResource)]
    return sub._app[CONSOLE]


async def test_the_template_engine_loads_with_the_first_page(env: ConsoleEnv, http: aiohttp.ClientSession) -> None:
    # Jinja2 is about 1 MB of a running gateway (issue 17: RSS at 64 modems): a console
    # nobody opens does not load it; the first page does, and escapes as ever.
    console = _console_of(env)
    c = env.client(http)
    assert (await c.get("/ui/")).status == 303  # a redirect to the sign-in page renders nothing
    assert not console.templates.loaded
    login = await c.get("/ui/login")
    assert login.status == 200 and 'name="signin"' in login.text
    assert login.headers["Content-Type"] == "text/html; charset=utf-8"
    assert console.templates.loaded
    assert "&lt;b&gt;" in console.templates.env.from_string("{{ x }}").render(x="<b>")


async def test_changes_need_the_csrf_token_and_this_origin(env: ConsoleEnv, http: aiohttp.ClientSession) -> None:
    c = env.client(http)
    assert (await c.login(env.keys["admin"])).status == 303
    form = {"to": "+15551230001", "text": "csrf test", "priority": "normal", "sim": "", "send_at": ""}
    no_token = await c.post("/ui/compose", form, csrf=False)
    assert no_token.status == 403 and "security token" in no_token.text
    bad_token = await c.post("/ui/compose", [*form.items(), ("csrf", "x" * 43)], csrf=False)
    assert bad_token.status == 403
    odd_token = await c.post("/ui/compose", [*form.items(), ("csrf", "ü€")], csrf=False)
    assert odd_token.status == 403
    cross_site = await c.post("/ui/compose", form, origin="http://evil.example")
    assert cross_site.status == 403
    fetch_meta = await c.post("/ui/compose", form, headers={"Sec-Fetch-Site": "cross-site"})
    assert fetch_meta.status == 403
    drain = await c.post("/ui/modems/sim1/drain", {}, csrf=False)
    assert drain.status == 403
    assert env.gw.pool.slots["sim1"].enabled
    rows = await env.gw.store.call(env.gw.store.messages.list_messages, limit=10)
    assert rows == []  # nothing was queued by the refused requests
    # With the token, from this origin: queued, through the intake, as the console door.
    good = await c.post("/ui/compose", form)
    assert good.status == 303 and good.headers["Location"].startswith("/ui/messages/")
    [row] = await env.gw.store.call(env.gw.store.messages.list_messages, limit=10)
    assert row["text"] == "csrf test" and row["api_key_id"] == env.key_ids["admin"]
    assert row["door"] == "console"


async def test_scopes_read_sees_send_composes_admin_changes(env: ConsoleEnv) -> None:
    async def client(name: str, session: aiohttp.ClientSession):  # type: ignore[no-untyped-def]
        c = env.client(session)
        assert (await c.login(env.keys[name])).status == 303
        return c

    jar = aiohttp.CookieJar
    async with aiohttp.ClientSession(cookie_jar=jar(unsafe=True)) as s1, \
            aiohttp.ClientSession(cookie_jar=jar(unsafe=True)) as s2, \
            aiohttp.ClientSession(cookie_jar=jar(unsafe=True)) as s3:
        read, send, sendonly = await client("read", s1), await client("send", s2), await client("sendonly", s3)
        form = {"to": "+15551230002", "text": "scope test", "priority": "normal"}
        assert (await read.get("/ui/messages")).status == 200
        assert (await read.get("/ui/compose")).status == 403
        refused = await read.post("/ui/compose", form)
        assert refused.status == 403 and "lacks the 'send' scope" in html.unescape(refused.text)
        assert (await read.post("/ui/modems/sim1/drain")).status == 403
        assert (await read.get("/ui/keys")).status == 403
        assert (await read.get("/ui/webhooks")).status == 403
        assert "/ui/compose" not in (await read.get("/ui/")).text  # no link to what it may not do
        assert (await send.post("/ui/modems/sim1/drain")).status == 403
        assert (await send.post("/ui/keys", {"name": "x", "scope": "admin"})).status == 403
        assert env.gw.pool.slots["sim1"].enabled
        keys = await env.gw.store.call(env.gw.store.keys.list_api_keys)
        assert all(k["name"] != "x" for k in keys)
        assert (await sendonly.get("/ui/messages")).status == 403
        assert (await sendonly.get("/ui/compose")).status == 200
        sent = await send.post("/ui/compose", form)
        assert sent.status == 303, sent.text[:500]
        message_path = sent.headers["Location"]
        # A key sees and cancels only its own messages; the read key gets "no such message".
        assert (await send.get(message_path)).status == 200
        assert (await read.get(message_path)).status == 404
        assert "scope test" not in (await read.get("/ui/messages")).text
        assert (await sendonly.post(message_path + "/cancel")).status == 404


async def test_session_expires_when_idle(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    # Idle for 2 s: a login and the page after it fit within that on a loaded CI machine
    # (at 0.4 s a busy run saw the session expire between the two).
    env = await start_env(tmp_path, modems=1, session_idle_s=2.0, session_max_s=60.0)
    try:
        c = env.client(http)
        assert (await c.login(env.keys["admin"])).status == 303
        assert (await c.get("/ui/messages")).status == 200
        await asyncio.sleep(2.3)
        expired = await c.get("/ui/messages")
        assert expired.status == 303 and "why=expired" in expired.headers["Location"]
        assert "next=%2Fui%2Fmessages" in expired.headers["Location"]
        hx = await c.get("/ui/messages", headers={"HX-Request": "true"})
        assert hx.status == 401 and hx.headers["HX-Redirect"].startswith("/ui/login")
    finally:
        await stop_env(env)


async def test_revoking_a_key_ends_its_sessions(env: ConsoleEnv) -> None:
    jar = aiohttp.CookieJar
    async with aiohttp.ClientSession(cookie_jar=jar(unsafe=True)) as s1, \
            aiohttp.ClientSession(cookie_jar=jar(unsafe=True)) as s2:
        admin, reader = env.client(s1), env.client(s2)
        assert (await admin.login(env.keys["admin"])).status == 303
        assert (await reader.login(env.keys["read"])).status == 303
        assert (await reader.get("/ui/messages")).status == 200
        gone = await admin.post(f"/ui/keys/{env.key_ids['read']}/revoke")
        assert gone.status == 303
        after = await reader.get("/ui/messages")
        assert after.status == 303 and after.headers["Location"].startswith("/ui/login")
        assert (await reader.login(env.keys["read"])).status == 401


async def test_admin_creates_a_key_shown_once(env: ConsoleEnv, http: aiohttp.ClientSession) -> None:
    c = env.client(http)
    assert (await c.login(env.keys["admin"])).status == 303
    bad = await c.post("/ui/keys", {"name": "", "scope": "read"})
    assert bad.status == 422 and "name" in bad.text
    made = await c.post("/ui/keys", [("name", "<b>ops</b>"), ("scope", "read"), ("scope", "send"),
                                     ("rate_per_s", "5"), ("daily_quota", "100")])
    assert made.status == 200 and made.headers["Cache-Control"] == "no-store"
    secret = re.search(r'<code class="secret" id="new-key">([^<]+)</code>', made.text)
    assert secret, made.text
    assert "&lt;b&gt;ops&lt;/b&gt;" in made.text and "<b>ops</b>" not in made.text
    listed = await c.get("/ui/keys")
    assert secret.group(1) not in listed.text and "&lt;b&gt;ops&lt;/b&gt;" in listed.text
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s2:
        assert (await env.client(s2).login(secret.group(1))).status == 303


async def test_rate_limit_of_the_key_applies(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    env = await start_env(tmp_path, modems=1, rate_per_s=2)
    try:
        c = env.client(http)
        assert (await c.login(env.keys["admin"])).status == 303  # sign-in and first page count
        statuses = [(await c.get("/ui/messages")).status for _ in range(4)]
        assert 429 in statuses, statuses
        limited = await c.get("/ui/messages")
        assert limited.status == 429 and int(limited.headers["Retry-After"]) >= 1
    finally:
        await stop_env(env)


async def test_xss_in_inbound_sms_and_message_text_is_escaped(env: ConsoleEnv, http: aiohttp.ClientSession) -> None:
    sender = "+447700900555"
    for text in XSS:
        env.fake.modems[1].modem.inject_sms(sender, text)
    c = env.client(http)
    assert (await c.login(env.keys["admin"])).status == 303

    async def all_stored() -> bool:
        return len(await env.gw.store.call(env.gw.store.inbound.list_inbound, sender=sender)) == len(XSS)

    await wait_until(all_stored, what="all inbound stored")
    for text in XSS:
        sent = await c.post("/ui/compose", {"to": "+15551230003", "text": text, "priority": "normal"})
        assert sent.status == 303, sent.text[:300]
    pages = [await c.get("/ui/conversations"),
             await c.get("/ui/conversations/thread?number=" + sender.replace("+", "%2B")),
             await c.get("/ui/conversations/thread?number=%2B15551230003"),
             await c.get("/ui/messages")]
    for page in pages:
        assert page.status == 200
        for text in XSS:
            assert text not in page.text
        assert "<script>window" not in page.text and "onerror=\"window" not in page.text
        assert 'href="javascript:' not in page.text
    thread = pages[1].text
    for text in XSS:
        assert text in html.unescape(thread)  # shown, as text


async def test_static_assets_are_small_compressed_and_cached(env: ConsoleEnv, http: aiohttp.ClientSession) -> None:
    assets = Assets()
    total = assets.compressed_total()
    assert total <= 200 * 1024, f"console assets are {total} bytes gzipped"
    c = env.client(http)
    login = await c.get("/ui/login")
    urls = re.findall(r'(?:src|href)="(/ui/static/[^"]+)"', login.text)
    assert any(u.endswith("htmx-2.0.11.min.js") for u in urls) and any(u.endswith("console.css") for u in urls)
    for url in urls:
        async with http.get(env.base + url, headers={"Accept-Encoding": "gzip"}) as r:
            assert r.status == 200, url
            assert r.headers["Content-Encoding"] == "gzip"
            assert "immutable" in r.headers["Cache-Control"]
            assert r.headers["X-Content-Type-Options"] == "nosniff"
            await r.read()
    stale = await c.get("/ui/static/000000000000/console.css")
    assert stale.status == 302 and stale.headers["Location"] == assets.url("/ui/", "console.css")
    assert (await c.get(f"/ui/static/{assets.tag}/../../gsmgw.db")).status == 404
    assert (await c.get(f"/ui/static/{assets.tag}/nope.js")).status == 404


async def test_compose_errors_keep_the_form_and_send_nothing(env: ConsoleEnv, http: aiohttp.ClientSession) -> None:
    c = env.client(http)
    assert (await c.login(env.keys["send"])).status == 303
    bad = await c.post("/ui/compose", {"to": "not a number", "text": "kept text", "priority": "normal"})
    assert bad.status == 422 and "not a phone number" in bad.text and "kept text" in bad.text
    assert 'aria-invalid="true"' in bad.text
    late = await c.post("/ui/compose", {"to": "+15551230004", "text": "x", "send_at": "yesterday"})
    assert late.status == 422
    pv = await c.post("/ui/compose/preview", {"text": "héllo €"})
    assert pv.status == 200 and "GSM 7-bit" in pv.text and "1 part" in pv.text
    pv = await c.post("/ui/compose/preview", {"text": "ж" * 80})
    assert "UCS-2" in pv.text and "2 parts" in pv.text
    assert await env.gw.store.call(env.gw.store.messages.list_messages, limit=5) == []


async def test_schedule_cancel_drain_and_enable(env: ConsoleEnv, http: aiohttp.ClientSession) -> None:
    c = env.client(http)
    assert (await c.login(env.keys["admin"])).status == 303
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    sent = await c.post("/ui/compose", {"to": "+15551230005", "text": "later", "send_at": later,
                                        "priority": "high", "sim": "sim2"})
    assert sent.status == 303
    path = sent.headers["Location"]
    page = await c.get(path)
    assert 'id="cancel"' in page.text and "Send at" in page.text
    done = await c.post(path + "/cancel")
    assert done.status == 303
    page = await c.get(path)
    assert "Cancelled" in page.text and 'id="message-state">cancelled<' in page.text
    assert (await c.post(path + "/cancel")).status == 303  # again: refused politely, not an error
    assert "only a queued message" in (await c.get(path)).text
    drained = await c.post("/ui/modems/sim1/drain")
    assert drained.status == 303 and not env.gw.pool.slots["sim1"].enabled
    assert "drained" in (await c.get("/ui/modems")).text
    assert (await c.post("/ui/modems/sim1/enable")).status == 303 and env.gw.pool.slots["sim1"].enabled
    assert (await c.post("/ui/modems/nope/drain")).status == 404
    old_driver = env.gw.pool.slots["sim2"].driver
    restarted = await c.post("/ui/modems/sim2/restart")
    assert restarted.status == 303 and "sim2: restarting" in (await c.get("/ui/modems")).text
    new_driver = env.gw.pool.slots["sim2"].driver
    assert new_driver is not old_driver and env.gw.pool.slots["sim2"].enabled
    await new_driver.wait_ready(10)
    again = await c.post("/ui/compose", {"to": "+15551230006", "text": "after restart", "sim": "sim2"})
    assert again.status == 303
    message_id = again.headers["Location"].rsplit("/", 1)[1]

    async def sent() -> bool:
        row = await env.gw.store.call(env.gw.store.messages.get_message, message_id)
        return bool(row) and row["state"] in ("sent", "delivered")

    await wait_until(sent, what="a send on the restarted modem")


async def test_live_stream_sends_tiles_and_ends_at_shutdown(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    env = await start_env(tmp_path, modems=1)
    stopped = False
    try:
        c = env.client(http)
        assert (await c.login(env.keys["read"])).status == 303
        async with http.get(env.base + "/ui/events") as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
            seen = b""
            async with asyncio.timeout(10):
                while b"event: tiles" not in seen or b"tile-sim1" not in seen:
                    seen += await r.content.readany()
            t0 = time.monotonic()
            await stop_env(env)
            stopped = True
            assert time.monotonic() - t0 < 5.0  # the open stream did not hold the shutdown
    finally:
        if not stopped:
            await stop_env(env)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.dictionaries(st.sampled_from(["state", "number", "sim", "batch", "since", "until", "cursor",
                                              "next", "why"]),
                             st.text(max_size=40), max_size=4))
def test_junk_queries_never_break_a_page(query: dict[str, str]) -> None:
    from gsmgw.console.messages import parse_filters

    filters, form, errors = parse_filters(query)  # the pure part: never raises
    assert isinstance(filters, dict) and isinstance(errors, list)
    assert all(len(v) <= 100 for v in form.values())


async def test_junk_forms_and_queries_get_pages_not_500(env: ConsoleEnv, http: aiohttp.ClientSession) -> None:
    c = env.client(http)
    assert (await c.login(env.keys["admin"])).status == 303
    junk = ["", "\x00", "'\"<>", "%", "9" * 5000, "ü€😀", "../../etc/passwd", "2026-13-45", "+", "*#"]
    for value in junk:
        for q in ("state", "number", "sim", "batch", "since", "until", "cursor"):
            async with http.get(env.base + "/ui/messages", params={q: value}) as r:
                assert r.status == 200, (q, value, r.status)
        async with http.get(env.base + "/ui/conversations/thread", params={"number": value}) as r:
            assert r.status in (200, 404)
        for path, fields in (("/ui/compose", ("to", "text", "send_at", "priority", "sim")),
                             ("/ui/conversations/reply", ("number", "text", "sim")),
                             ("/ui/modems/sim1/ussd", ("code",)),
                             ("/ui/keys", ("name", "scope", "rate_per_s", "daily_quota"))):
            if path.endswith("/ussd") and re.fullmatch(r"[0-9*#+]{1,64}", value):
                continue  # a well-formed code would really be sent
            page = await c.post(path, {f: value for f in fields})
            assert page.status < 500, (path, value, page.status, page.text[:300])


async def test_ussd_balance_and_webhook_retry(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    dead = "http://127.0.0.1:9/hook"  # discard port: nothing listens, every attempt fails
    sections = {
        "inbound": InboundConfig(balance_ussd="*100#", balance_interval_s=3600.0),
        "webhooks": WebhooksConfig(subscription=(WebhookSubscription(dead, ("sms:*",)),), max_attempts=1,
                                   retry_initial_s=0.05, retry_max_s=0.1, poll_interval_s=0.05, timeout_s=1.0),
    }
    env = await start_env(tmp_path, modems=1, sections=sections)
    try:
        c = env.client(http)
        assert (await c.login(env.keys["admin"])).status == 303
        asked = await c.post("/ui/modems/sim1/ussd", {"code": "*100#"})
        assert asked.status == 303
        page = await c.get("/ui/modems")
        reply = env.fake.modems[0].modem.behaviour.ussd_reply
        assert "USSD *100# answered" in page.text
        assert f'<span class="ussd-answer">*100# → {html.escape(reply)}</span>' in page.text
        assert 'class="ussd-answer"' not in (await c.get("/ui/modems")).text  # an answer is shown once
        bad = await c.post("/ui/modems/sim1/ussd", {"code": "AT+CFUN=0"})
        assert bad.status == 303 and "1-64 of 0-9" in (await c.get("/ui/modems")).text
        checked = await c.post("/ui/modems/sim1/balance")
        assert checked.status == 303 and "balance" in (await c.get("/ui/modems")).text
        assert env.gw.pool.inbound.balances["sim1"]["text"] == reply

        sent = await c.post("/ui/compose", {"to": "+15551230009", "text": "hook me", "priority": "normal"})
        assert sent.status == 303

        async def failed_delivery() -> bool:
            counts = await env.gw.store.call(env.gw.store.webhooks.webhook_counts)
            return counts.get("failed", 0) >= 1

        await wait_until(failed_delivery, timeout_s=15, what="a failed webhook delivery")
        hooks = await c.get("/ui/webhooks?state=failed")
        assert hooks.status == 200 and dead in hooks.text and "Retry" in hooks.text
        retried = await c.post("/ui/webhooks/retry")
        assert retried.status == 303
        assert "will be tried again" in (await c.get("/ui/webhooks")).text
    finally:
        await stop_env(env)
