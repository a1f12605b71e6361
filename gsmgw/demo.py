"""``gsmgw demo``: the gateway on its embedded defaults, with emulated modems.

Everything is real but the modems: SQLite in a state folder, the emulator on
pseudo-terminals, the normal driver and dispatcher, the API on localhost.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import sys
from pathlib import Path

from gsmgw.config import ApiConfig, Config, DispatchConfig, ModemConfig, StoreConfig, parse_listen

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
    """The demo's admin key: given, kept from the last run, or new; saved (0600) for the CLI."""
    key_file = state_dir / "api-key"
    if not given and key_file.exists():
        return key_file.read_text().strip()
    key = given or f"gsk_{secrets.token_hex(4)}_{secrets.token_urlsafe(24)}"
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    key_file.chmod(0o600)
    return key


def write_cli_config(state_dir: Path, cfg: Config, base_url: str) -> Path:
    """A config for the CLI (`gsmgw keys/status/send` with GSMGW_CONFIG): store, URL, key file."""
    path = state_dir / "gsmgw.toml"
    host, _port = parse_listen(cfg.api.listen)
    listen = f"[{host}]" if ":" in host else host
    listen += ":" + base_url.rsplit(":", 1)[1]
    path.write_text(
        "# Written by `gsmgw demo` for the command line:\n"
        f"#   export GSMGW_CONFIG={path}\n"
        "#   gsmgw status; gsmgw send --to +15551234567 --text hi; gsmgw keys list\n"
        "# The demo's modems are emulated inside the demo process, so there is no [[modem]] here.\n"
        f"[api]\nlisten = {json.dumps(listen)}\n\n"
        f"[store]\nurl = {json.dumps(cfg.store.url)}\n\n"
        f"[client]\nurl = {json.dumps(base_url)}\napi_key_file = {json.dumps(str(state_dir / 'api-key'))}\n"
    )
    return path


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
    from gsmgw.errors import ListenError, StoreInUse
    from gsmgw.store.ownership import StoreOwner

    if modems < 1 or modems > 64:
        print("gsmgw demo: --modems must be from 1 to 64", file=sys.stderr)
        return 2
    await asyncio.to_thread(state_dir.mkdir, parents=True, exist_ok=True)
    # Take the state folder's store before touching anything in it (ports, key, config):
    # a second demo on the same folder must leave the first one alone.
    url = demo_config(state_dir, [], host, port).store.url
    owner = StoreOwner(url, "demo", command="gsmgw demo")
    try:
        await asyncio.to_thread(owner.acquire)
    except StoreInUse as exc:
        print(f"gsmgw demo: the state folder {state_dir} is in use by {exc.holder}: stop that one "
              "(Ctrl-C in its terminal), or give this one another --state-dir", file=sys.stderr)
        return 1
    try:
        key = await asyncio.to_thread(_load_or_make_key, state_dir, api_key)
        stop = stop or asyncio.Event()
        install_signal_handlers(stop)
        behaviours = [Behaviour(send_latency_s=latency_s) for _ in range(modems)]
        async with FakeModemPool(count=modems, directory=state_dir / "ports", behaviours=behaviours) as fake:
            ports = [str(m.path) for m in fake.modems]
            cfg = demo_config(state_dir, ports, host, port)
            gw = Gateway(cfg, host="demo", command="gsmgw demo", create_store=True)
            gw.owner = owner  # already held
            await gw.store.call(gw.store.migrate)
            await gw.store.call(gw.store.keys.create_api_key, "demo", ["send", "read", "admin"], key=key)

            def banner(g: Gateway) -> None:
                url = g.base_url
                cli_cfg = write_cli_config(state_dir, cfg, url)
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
                    f"or, in another terminal, the command line with the demo's config and key:\n"
                    f"  export GSMGW_CONFIG={cli_cfg}\n"
                    f"  gsmgw send --to +15551234567 --text hi --wait-s 10\n"
                    f"  gsmgw status\n"
                    f"Stop with Ctrl-C.\n",
                    flush=True,
                )

            try:
                await gw.serve(stop, on_ready=banner)
            except ListenError as exc:
                print(f"gsmgw demo: {exc.reason}: give another --port (0 = any free port)", file=sys.stderr)
                return 1
    finally:
        await asyncio.to_thread(owner.release)
    return 0
