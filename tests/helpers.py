"""Helpers shared by tests that run a real gateway on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from gsmgw.config import ApiConfig, Config, DispatchConfig, ModemConfig, StoreConfig
from gsmgw.daemon import Gateway


async def until(cond: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    """Wait until ``cond()`` holds; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


@dataclass
class Client:
    base: str
    key: str
    session: aiohttp.ClientSession

    async def request(self, method: str, path: str, *, json: Any = None, key: str | None = "default",
                      headers: dict[str, str] | None = None, data: Any = None) -> tuple[int, Any]:
        h = dict(headers or {})
        if key == "default":
            key = self.key
        if key is not None:
            h["Authorization"] = f"Bearer {key}"
        async with self.session.request(method, self.base + path, json=json, data=data, headers=h) as r:
            body = await r.json(content_type=None) if r.content_length != 0 else None
            return r.status, body

    async def wait_state(self, message_id: str, states: set[str], timeout_s: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        last: Any = None
        while time.monotonic() < deadline:
            _, last = await self.request("GET", f"/api/v1/messages/{message_id}")
            if last and last.get("state") in states:
                return last
            await asyncio.sleep(0.02)
        raise AssertionError(f"message {message_id} not in {states} after {timeout_s}s: {last}")


def make_config(tmp_path: Path, ports: list[str] | None = None, *, store_url: str | None = None,
                **dispatch: Any) -> Config:
    return Config(
        api=ApiConfig(listen="127.0.0.1:0"),
        store=StoreConfig(url=store_url or f"sqlite:///{tmp_path / 'gsmgw.db'}", lease_s=30.0),
        dispatch=DispatchConfig(**{"poll_interval_s": 0.2, "retry_backoff_initial_s": 0.05, **dispatch}),
        modem=tuple(
            ModemConfig(id=f"sim{i + 1}", port=p, command_timeout_s=2.0, prompt_timeout_s=2.0,
                        send_timeout_s=3.0, registration_timeout_s=5.0, health_interval_s=30.0)
            for i, p in enumerate(ports or [])
        ),
    )


@asynccontextmanager
async def running_gateway(cfg: Config, *, scopes: tuple[str, ...] = ("send", "read", "admin"),
                          host: str = "test-host") -> AsyncIterator[tuple[Gateway, Client]]:
    gw = Gateway(cfg, host=host)
    await gw.start()
    try:
        _, key = await gw.store.call(gw.store.keys.create_api_key, "test", list(scopes))
        async with aiohttp.ClientSession() as session:
            yield gw, Client(gw.base_url, key, session)
    finally:
        await gw.stop()
