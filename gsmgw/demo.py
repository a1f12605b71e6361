"""``gsmgw demo``: the gateway on its embedded defaults, with emulated modems.

Everything is real but the modems: SQLite in a state folder, the emulator on
pseudo-terminals, the normal driver and dispatcher, the API on localhost.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sys
from pathlib import Path

from gsmgw.config import ApiConfig, Config, DispatchConfig, ModemConfig, StoreConfig

log = logging.getLogger(__name__)


def demo_config(state_dir: Path, ports: list[str], host: str, port: int) -> Config:
    return Config(
        api=ApiConfig(listen=f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"),
        store=StoreConfig(url=f"sqlite:///{state_dir / 'gsmgw.db'}"),
        dispatch=DispatchConfig(poll_interval_s=1.0),
        modem=tuple(
            ModemConfig(id=f"sim{i + 1}", port=p, command_timeout_s=5.0, send_timeout_s=30.0)
            for i, p in enumerate(ports)
        ),
        source="<gsmgw demo>",
    )


def _load_or_make_key(state_dir: Path, given: str | None) -> str:
    key_file = state_dir / "api-key"
    if given:
        return given
    if key_file.exists():
        return key_file.read_text().strip()
    key = f"gsk_{secrets.token_hex(4)}_{secrets.token_urlsafe(24)}"
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    return key


async def run_demo(
    *,
    modems: int,
    host: str,
    port: int,
    state_dir: Path,
    api_key: str | None,
    latency_s: float,
    stop: asyncio.Event | None = None,
) -> int:
    from gsmgw.daemon import Gateway, install_signal_handlers
    from gsmgw.emulator import Behaviour, FakeModemPool

    if modems < 1 or modems > 64:
        print("gsmgw demo: --modems must be from 1 to 64", file=sys.stderr)
        return 2
    await asyncio.to_thread(state_dir.mkdir, parents=True, exist_ok=True)
    key = await asyncio.to_thread(_load_or_make_key, state_dir, api_key)
    stop = stop or asyncio.Event()
    install_signal_handlers(stop)
    behaviours = [Behaviour(send_latency_s=latency_s) for _ in range(modems)]
    async with FakeModemPool(count=modems, directory=state_dir / "ports", behaviours=behaviours) as fake:
        ports = [str(m.path) for m in fake.modems]
        cfg = demo_config(state_dir, ports, host, port)
        gw = Gateway(cfg, host="demo")
        await gw.store.call(gw.store.migrate)
        await gw.store.call(gw.store.keys.create_api_key, "demo", ["send", "read", "admin"], key=key)

        def banner(g: Gateway) -> None:
            url = g.base_url
            numbers = ", ".join(m.modem.number for m in fake.modems)
            print(
                f"\ngsmgw demo is running\n"
                f"  API:        {url}/api/v1\n"
                f"  console:    {url}/ui/  (sign in with the API key)\n"
                f"  API key:    {key}\n"
                f"  state:      {state_dir}\n"
                f"  modems:     {len(ports)} emulated ({numbers}) on {', '.join(ports)}\n\n"
                f"Try:\n"
                f"  curl -s -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\\n"
                f"       -d '{{\"to\": \"+15551234567\", \"text\": \"hi\"}}' {url}/api/v1/messages\n"
                f"Stop with Ctrl-C.\n",
                flush=True,
            )

        await gw.serve(stop, on_ready=banner)
    return 0
