"""A real gateway on 127.0.0.1 with emulated modems over ptys, keys of each scope,
and a cookie-keeping HTTP client that signs in to the console like a browser."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gsmgw.config import Config, ConsoleConfig
from gsmgw.daemon import Gateway
from gsmgw.emulator import FakeModemPool
from tests.helpers import make_config


@dataclass
class Page:
    status: int
    text: str
    headers: Any
    url: str

    def csrf(self) -> str:
        m = re.search(r'<meta name="csrf-token" content="([^"]*)">', self.text)
        assert m, "no CSRF token in the page"
        return m.group(1)


@dataclass
class Browserish:
    """Keeps cookies (also for 127.0.0.1) and sends Origin on POST, as a browser does."""

    base: str
    session: aiohttp.ClientSession
    csrf: str = ""

    async def get(self, path: str, *, follow: bool = False, headers: dict[str, str] | None = None) -> Page:
        async with self.session.get(self.base + path, allow_redirects=follow, headers=headers) as r:
            return Page(r.status, await r.text(), r.headers, str(r.url))

    async def post(self, path: str, data: dict[str, Any] | list[tuple[str, str]] | None = None, *,
                   csrf: bool = True, origin: str | None = "same", follow: bool = False,
                   headers: dict[str, str] | None = None) -> Page:
        h = dict(headers or {})
        if origin == "same":
            h["Origin"] = self.base
        elif origin is not None:
            h["Origin"] = origin
        body: Any = list(data.items()) if isinstance(data, dict) else list(data or [])
        if csrf:
            body.append(("csrf", self.csrf))
        async with self.session.post(self.base + path, data=body, allow_redirects=follow, headers=h) as r:
            return Page(r.status, await r.text(), r.headers, str(r.url))

    async def login(self, key: str) -> Page:
        form = await self.get("/ui/login")
        m = re.search(r'name="signin" value="([^"]+)"', form.text)
        assert m, form.text
        page = await self.post("/ui/login", {"signin": m.group(1), "key": key, "next": "/ui/"}, csrf=False)
        if page.status == 303:
            self.csrf = (await self.get("/ui/")).csrf() if page.headers["Location"] == "/ui/" else ""
        return page


@dataclass
class ConsoleEnv:
    gw: Gateway
    fake: FakeModemPool
    keys: dict[str, str] = field(default_factory=dict)  # scope name -> secret
    key_ids: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return self.gw.base_url

    def client(self, session: aiohttp.ClientSession) -> Browserish:
        return Browserish(self.base, session)


def console_config(tmp_path: Path, ports: list[str], *, sections: dict[str, Any] | None = None,
                   **console: Any) -> Config:
    """The tests' gateway config with a [console] of ``console``; ``sections`` replaces
    whole sections (e.g. {"webhooks": WebhooksConfig(...)})."""
    cfg = make_config(tmp_path, ports)
    return dataclasses.replace(cfg, console=ConsoleConfig(**console), **(sections or {}))


async def start_env(tmp_path: Path, *, modems: int = 2, rate_per_s: int = 0,
                    sections: dict[str, Any] | None = None, **console: Any) -> ConsoleEnv:
    fake = FakeModemPool(count=modems, directory=tmp_path / "ports", report_delay_s=0.05)
    await fake.start()
    try:
        cfg = console_config(tmp_path, [str(m.path) for m in fake.modems], sections=sections, **console)
        gw = Gateway(cfg, host="test-host")
        await gw.start()
    except BaseException:
        await fake.stop()
        raise
    env = ConsoleEnv(gw, fake)
    try:
        for name, scopes in (("admin", ["admin"]), ("read", ["read"]), ("send", ["send", "read"]),
                             ("sendonly", ["send"])):
            key_id, secret = await gw.store.call(gw.store.keys.create_api_key, f"{name}-key", scopes,
                                                 rate_per_s=rate_per_s)
            env.keys[name], env.key_ids[name] = secret, key_id
        for i in range(modems):
            await gw.pool.slots[f"sim{i + 1}"].driver.wait_ready(10)
    except BaseException:
        await stop_env(env)
        raise
    return env


async def stop_env(env: ConsoleEnv) -> None:
    try:
        await env.gw.stop()
    finally:
        await env.fake.stop()


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[ConsoleEnv]:
    e = await start_env(tmp_path)
    try:
        yield e
    finally:
        await stop_env(e)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        yield s
