"""The console's campaign pages: a list and a detail page with progress, names and
templates escaped, pause / resume / cancel buttons that need the CSRF token, and
another key's campaigns out of sight."""

from __future__ import annotations

import html

import aiohttp

from gsmgw.campaigns import CampaignService, ContactsService, ImportOptions
from gsmgw.intake import Caller
from tests.console.conftest import ConsoleEnv

XSS = '<script>window.x=1</script>'


async def test_campaign_pages_escape_and_buttons_pause_resume_cancel(env: ConsoleEnv,
                                                                     http: aiohttp.ClientSession) -> None:
    gw = env.gw
    await ContactsService(gw.store, lambda: gw.cfg).import_csv(
        b"number,name\n+15550100001,A\n+15550100002,B\n", ImportOptions(group="g"))
    owner = Caller(id=env.key_ids["send"], name="send-key", scopes=frozenset({"send", "read"}))
    svc = CampaignService(gw.store, gw.intake, lambda: gw.cfg)
    camp = await svc.create(owner, {"name": XSS, "template": "Hi {name} " + XSS, "group": "g",
                                    "start_at": "2099-01-01T00:00:00Z"})
    await svc.start(owner, camp["id"])  # scheduled far ahead: nothing is sent meanwhile
    c = env.client(http)
    assert (await c.login(env.keys["send"])).status == 303
    for path in ("/ui/campaigns", f"/ui/campaigns/{camp['id']}"):
        page = await c.get(path)
        assert page.status == 200, page.text[:300]
        assert XSS not in page.text and html.escape(XSS) in page.text
    page = await c.get(f"/ui/campaigns/{camp['id']}")
    assert 'id="campaign-state">scheduled<' in page.text and 'id="campaign-pause"' in page.text
    assert (await c.post(f"/ui/campaigns/{camp['id']}/pause", {}, csrf=False)).status == 403
    assert (await c.post(f"/ui/campaigns/{camp['id']}/pause", {})).status == 303
    page = await c.get(f"/ui/campaigns/{camp['id']}")
    assert 'id="campaign-state">paused<' in page.text and 'id="campaign-resume"' in page.text
    assert (await c.post(f"/ui/campaigns/{camp['id']}/resume", {})).status == 303
    assert (await c.post(f"/ui/campaigns/{camp['id']}/cancel", {})).status == 303
    page = await c.get(f"/ui/campaigns/{camp['id']}")
    assert 'id="campaign-state">cancelled<' in page.text and "<td>2</td>" in page.text
    # A read-only key sees no buttons; another (non-admin) key does not see the campaign.
    other = env.client(aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)))
    try:
        assert (await other.login(env.keys["read"])).status == 303
        assert (await other.get(f"/ui/campaigns/{camp['id']}")).status == 404
        assert XSS not in (await other.get("/ui/campaigns")).text
        assert (await other.get("/ui/campaigns/nope")).status == 404
    finally:
        await other.session.close()
