"""TLS on both sides: gsmgw's listener offers STARTTLS (then AUTH with an API key), and
the forwarder requires STARTTLS from its mail server and verifies its certificate."""

from __future__ import annotations

import asyncio
import dataclasses
import smtplib
import ssl
import subprocess
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP

from gsmgw.config import EmailConfig, EmailForward, EmailListenerConfig, SmtpOutConfig
from gsmgw.emulator import FakeModemPool
from tests.helpers import make_config, running_gateway
from tests.mail.conftest import MailServer
from tests.mail.test_mail_in import DOMAIN, _mail

pytestmark = pytest.mark.skipif(subprocess.run(["which", "openssl"], capture_output=True).returncode != 0,
                                reason="openssl not installed")


def _cert(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out",
                    str(cert)], check=True, capture_output=True, timeout=30)
    return cert, key


class TlsMailServer(MailServer):
    """The recording server, with STARTTLS required before MAIL."""

    tls: ssl.SSLContext | None = None

    async def up(self) -> None:
        loop = asyncio.get_running_loop()

        def factory() -> SMTP:
            proto = SMTP(self, hostname="mail.test", tls_context=self.tls, require_starttls=True, loop=loop)
            self._conns.append(proto)
            return proto

        self._server = await loop.create_server(factory, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]


async def test_starttls_both_ways(tmp_path: Path) -> None:
    cert, key = _cert(tmp_path)
    server = TlsMailServer()
    server.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.tls.load_cert_chain(cert, key)
    await server.up()
    try:
        async with FakeModemPool(count=1, directory=tmp_path / "ports") as fake:
            cfg = make_config(tmp_path, [str(m.path) for m in fake.modems])
            cfg = dataclasses.replace(cfg, email=EmailConfig(
                smtp=SmtpOutConfig(host="127.0.0.1", port=server.port, security="starttls", ca_file=str(cert),
                                   from_address="gsmgw@gw.test", timeout_s=5.0),
                forward=(EmailForward(to=("ops@example.com",)),), poll_interval_s=0.02,
                listener=EmailListenerConfig(enabled=True, port=0, domain=DOMAIN, tls_cert_file=str(cert),
                                             tls_key_file=str(key))))
            async with running_gateway(cfg) as (gw, _c):
                await gw.pool.slots["sim1"].driver.wait_ready(10)
                # Out: the forwarder upgrades and verifies the server against ca_file.
                fake.modems[0].modem.inject_sms("+15550001111", "over TLS")
                [mail] = await server.wait_for(1)
                assert "over TLS" in mail.body
                # In: STARTTLS, then AUTH with an API key.
                _, api_key = await gw.store.call(gw.store.keys.create_api_key, "tls", ["send"])
                port = gw.mail_listener.bound[0][1]

                def client() -> dict[str, object]:
                    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
                        c.ehlo("client.test")
                        assert c.has_extn("starttls")
                        c.starttls(context=ssl.create_default_context(cafile=str(cert)))
                        c.ehlo("client.test")
                        c.login("tls", api_key)
                        return c.send_message(_mail(f"+15550002222@{DOMAIN}", "sent over STARTTLS",
                                                    sender="x@y.test"))

                assert await asyncio.to_thread(client) == {}
                rows = await gw.store.call(gw.store.messages.list_messages, limit=10)
                assert [r["text"] for r in rows] == ["sent over STARTTLS"]
    finally:
        await server.down()
