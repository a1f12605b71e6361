"""Kannel (bearerbox + smsbox) as an ESME of gsmgw: generated config, subprocesses, loopback ports.

Kannel's SMPP client binds to gsmgw as a transceiver; messages go in through
smsbox's sendsms HTTP interface, delivery reports come back to a ``dlr-url`` and
inbound SMS to an ``sms-service`` get-url, both served by the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

BEARERBOX = shutil.which("bearerbox") or "/usr/sbin/bearerbox"
SMSBOX = shutil.which("smsbox") or "/usr/sbin/smsbox"


def installed() -> bool:
    return Path(BEARERBOX).exists() and Path(SMSBOX).exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Callbacks:
    """What Kannel calls back: delivery reports and inbound SMS, as query dicts."""

    dlrs: list[dict[str, str]] = field(default_factory=list)
    mos: list[dict[str, str]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Kannel:
    directory: Path
    sendsms_port: int
    admin_port: int
    callback_port: int
    callbacks: Callbacks

    def logs(self) -> str:
        out = []
        for name in ("bearerbox.log", "smsbox.log", "smsc.log"):
            p = self.directory / name
            if p.exists():
                out.append(f"--- {name}\n" + p.read_text(errors="replace")[-4000:])
        return "\n".join(out)

    def sendsms(self, to: str, text: str, *, coding: int | None = None, dlr_mask: int = 3,
                tag: str = "") -> tuple[int, str]:
        """GET /cgi-bin/sendsms (blocking: run it in a thread)."""
        dlr_url = (f"http://127.0.0.1:{self.callback_port}/dlr?tag={urllib.parse.quote(tag)}"
                   "&type=%d&reply=%A&id=%F&to=%p")
        q = {"username": "tester", "password": "testpw", "to": to, "text": text, "from": "Shop",
             "dlr-mask": str(dlr_mask), "dlr-url": dlr_url}
        if coding is not None:
            q["coding"] = str(coding)
            q["charset"] = "UTF-8"
        url = f"http://127.0.0.1:{self.sendsms_port}/cgi-bin/sendsms?" + urllib.parse.urlencode(q)
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                return resp.status, resp.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def status(self) -> str:
        url = f"http://127.0.0.1:{self.admin_port}/status.txt?password=adminpw"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.read().decode(errors="replace")


def write_config(d: Path, *, smpp_port: int, system_id: str, password: str, admin_port: int, box_port: int,
                 sendsms_port: int, callback_port: int) -> Path:
    conf = d / "kannel.conf"
    conf.write_text(f"""
group = core
admin-port = {admin_port}
admin-password = adminpw
admin-interface = 127.0.0.1
smsbox-port = {box_port}
smsbox-interface = 127.0.0.1
box-allow-ip = 127.0.0.1
log-file = "{d}/bearerbox.log"
log-level = 0
access-log = "{d}/access.log"
store-type = spool
store-location = "{d}/spool"
dlr-storage = internal

group = smsc
smsc = smpp
smsc-id = gsmgw
host = 127.0.0.1
port = {smpp_port}
transceiver-mode = true
smsc-username = "{system_id}"
smsc-password = "{password}"
system-type = ""
interface-version = 34
source-addr-ton = 5
source-addr-npi = 0
dest-addr-ton = 1
dest-addr-npi = 1
enquire-link-interval = 30
reconnect-delay = 1
max-pending-submits = 10
log-file = "{d}/smsc.log"
log-level = 0

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {box_port}
sendsms-port = {sendsms_port}
sendsms-interface = 127.0.0.1
log-file = "{d}/smsbox.log"
log-level = 0
mo-recode = true

group = sendsms-user
username = tester
password = testpw
max-messages = 3
concatenation = true

group = sms-service
keyword = default
get-url = "http://127.0.0.1:{callback_port}/mo?from=%p&to=%P&text=%a&coding=%c"
accept-x-kannel-headers = true
max-messages = 0
catch-all = true
""")
    (d / "spool").mkdir(exist_ok=True)
    return conf


@contextlib.asynccontextmanager
async def running_kannel(directory: Path, *, smpp_port: int, system_id: str, password: str,
                         ready_timeout_s: float = 20.0) -> AsyncIterator[Kannel]:
    """bearerbox + smsbox bound to gsmgw (waits for the SMPP bind), and a callback server."""
    callbacks = Callbacks()

    async def on_dlr(request: web.Request) -> web.Response:
        callbacks.dlrs.append(dict(request.query))
        callbacks.changed.set()
        return web.Response(text="ok")

    async def on_mo(request: web.Request) -> web.Response:
        callbacks.mos.append(dict(request.query))
        callbacks.changed.set()
        return web.Response(text="")  # an empty body: smsbox sends no reply SMS

    app = web.Application()
    app.router.add_get("/dlr", on_dlr)
    app.router.add_get("/mo", on_mo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    callback_port = runner.addresses[0][1]
    admin_port, box_port, sendsms_port = free_port(), free_port(), free_port()
    conf = write_config(directory, smpp_port=smpp_port, system_id=system_id, password=password,
                        admin_port=admin_port, box_port=box_port, sendsms_port=sendsms_port,
                        callback_port=callback_port)
    procs: list[asyncio.subprocess.Process] = []
    kannel = Kannel(directory, sendsms_port, admin_port, callback_port, callbacks)
    try:
        procs.append(await asyncio.create_subprocess_exec(
            BEARERBOX, str(conf), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL))
        await _wait_port(admin_port, ready_timeout_s, kannel)
        procs.append(await asyncio.create_subprocess_exec(
            SMSBOX, str(conf), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL))
        await _wait_port(sendsms_port, ready_timeout_s, kannel)
        deadline = time.monotonic() + ready_timeout_s
        while "online" not in await asyncio.to_thread(_smsc_line, kannel):
            if time.monotonic() > deadline:
                raise AssertionError("Kannel's SMPP link never came online\n" + kannel.logs())
            await asyncio.sleep(0.2)
        yield kannel
    finally:
        for p in reversed(procs):
            if p.returncode is None:
                p.terminate()
        for p in reversed(procs):
            try:
                await asyncio.wait_for(p.wait(), 10)
            except TimeoutError:
                p.kill()
                await p.wait()
        await runner.cleanup()


def _smsc_line(k: Kannel) -> str:
    try:
        status = k.status()
    except OSError:
        return ""
    return next((line for line in status.splitlines() if "gsmgw" in line and "SMPP" in line), "")


async def _wait_port(port: int, timeout_s: float, k: Kannel) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            _r, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            await w.wait_closed()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"port {port} never opened\n" + k.logs()) from None
            await asyncio.sleep(0.1)
