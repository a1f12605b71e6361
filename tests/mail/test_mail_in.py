"""E-mail → SMS: gsmgw's SMTP listener, driven by the standard library's smtplib client.

A mail to <number>@<domain> becomes an SMS delivered on the emulator; refusals come
as 5xx replies with a reason (unknown sender, bad number, unknown domain, too long,
oversize); AUTH with an API key; several recipients make one batch."""

from __future__ import annotations

import asyncio
import dataclasses
import smtplib
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from gsmgw.config import Config, DispatchConfig, EmailConfig, EmailListenerConfig
from gsmgw.daemon import Gateway
from gsmgw.emulator import FakeModemPool
from gsmgw.mail.listener import mail_text
from gsmgw.sms import Deliver, decode_pdu
from tests.helpers import make_config, running_gateway
from tests.inbound.helpers import wait_until

DOMAIN = "sms.gw.test"


def _config(tmp_path: Path, ports: list[str], key_file: Path, **listener: Any) -> Config:
    cfg = make_config(tmp_path, ports)
    lc = EmailListenerConfig(**{"enabled": True, "host": "127.0.0.1", "port": 0, "domain": DOMAIN,
                                "allowed_senders": ("monitor@corp.test", "*@printers.corp.test"),
                                "api_key_file": str(key_file), **listener})
    return dataclasses.replace(cfg, email=EmailConfig(listener=lc))


async def _gateway_key(gw: Gateway, key_file: Path, scopes: tuple[str, ...] = ("send",)) -> str:
    _, key = await gw.store.call(gw.store.keys.create_api_key, "mail", list(scopes))
    key_file.write_text(key + "\n")
    return str(key)


def _mail(to: str | list[str], body: str, *, subject: str = "Disk full", sender: str = "monitor@corp.test",
          message_id: str | None = None) -> EmailMessage:
    m = EmailMessage()
    m["From"] = sender
    m["To"] = to if isinstance(to, str) else ", ".join(to)
    m["Subject"] = subject
    if message_id:
        m["Message-ID"] = message_id
    m.set_content(body)
    return m


def _send(port: int, msg: EmailMessage, *, sender: str | None = None, to: list[str] | None = None,
          login: tuple[str, str] | None = None) -> dict[str, Any]:
    """Blocking smtplib; run in a thread so the listener (in this loop) can answer."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo("client.test")
        if login:
            client.login(*login)
        return client.send_message(msg, from_addr=sender, to_addrs=to)


async def send(port: int, msg: EmailMessage, **kw: Any) -> dict[str, Any]:
    return await asyncio.to_thread(_send, port, msg, **kw)


async def test_a_mail_becomes_an_sms_delivered_on_the_emulator(tmp_path: Path) -> None:
    key_file = tmp_path / "mail.key"
    async with FakeModemPool(count=2, directory=tmp_path / "ports", report_delay_s=0.01) as fake:
        to = fake.modems[1].modem.number
        cfg = _config(tmp_path, [str(fake.modems[0].path)], key_file, subject="prepend")
        async with running_gateway(cfg) as (gw, c):
            await _gateway_key(gw, key_file)
            await gw.pool.slots["sim1"].driver.wait_ready(10)
            port = gw.mail_listener.bound[0][1]
            body = "Server db1: /var is 97% full.\n\n-- \nMonitoring robot\n"
            refused = await send(port, _mail(f"{to}@{DOMAIN}", body, message_id="<m1@corp.test>"))
            assert refused == {}
            rows = await gw.store.call(gw.store.messages.list_messages, limit=10)
            [row] = rows
            assert row["to_number"] == to and row["door"] == "email"
            assert row["text"] == "Disk full\nServer db1: /var is 97% full."  # subject first, signature gone
            await c.wait_state(row["id"], {"delivered"}, timeout_s=15)
            # The receiving emulated phone holds it (nobody drains its SIM storage here).
            storage = fake.modems[1].modem.storages["SM"]
            await wait_until(lambda: storage.used == 1, what="stored on the receiving SIM")
            [(_i, stored)] = storage.items()
            deliver = decode_pdu(stored.pdu, tpdu_length=stored.tpdu_length)
            assert isinstance(deliver, Deliver) and deliver.text == row["text"]
            assert deliver.originator == fake.modems[0].modem.number
            # The same mail again (a client that lost our 250): queued once.
            assert await send(port, _mail(f"{to}@{DOMAIN}", body, message_id="<m1@corp.test>")) == {}
            assert len(await gw.store.call(gw.store.messages.list_messages, limit=10)) == 1


async def test_refusals_are_5xx_with_a_reason_and_queue_nothing(tmp_path: Path) -> None:
    key_file = tmp_path / "mail.key"
    cfg = _config(tmp_path, [], key_file, max_size=2048)
    cfg = dataclasses.replace(cfg, dispatch=DispatchConfig(max_parts=1))
    async with running_gateway(cfg) as (gw, _c):
        await _gateway_key(gw, key_file)
        port = gw.mail_listener.bound[0][1]
        ok = f"+15550001234@{DOMAIN}"

        with pytest.raises(smtplib.SMTPSenderRefused) as e:
            await send(port, _mail(ok, "hi", sender="stranger@evil.test"))
        assert e.value.smtp_code == 550 and b"sender not allowed" in e.value.smtp_error

        with pytest.raises(smtplib.SMTPRecipientsRefused) as r:
            await send(port, _mail(f"not-a-number@{DOMAIN}", "hi"))
        [(code, why)] = r.value.recipients.values()
        assert code == 553 and b"is not a phone number" in why

        with pytest.raises(smtplib.SMTPRecipientsRefused) as r:
            await send(port, _mail("+15550001234@elsewhere.test", "hi"))
        [(code, why)] = r.value.recipients.values()
        assert code == 550 and b"unknown domain" in why

        with pytest.raises(smtplib.SMTPDataError) as d:
            await send(port, _mail(ok, "x" * 200))  # max_parts = 1: 160 GSM characters at most
        assert d.value.smtp_code == 552 and b"too long" in d.value.smtp_error

        with pytest.raises((smtplib.SMTPDataError, smtplib.SMTPSenderRefused)) as big:
            await send(port, _mail(ok, "y" * 4000))  # over max_size
        assert big.value.smtp_code == 552

        html = EmailMessage()
        html["From"], html["To"], html["Subject"] = "monitor@corp.test", ok, "html only"
        html.set_content("<p>hi</p>", subtype="html")
        with pytest.raises(smtplib.SMTPDataError) as h:
            await send(port, html)
        assert h.value.smtp_code == 550 and b"text/plain" in h.value.smtp_error

        # A whole domain may be allowed; several recipients make one batch.
        refused = await send(port, _mail([ok, f"+15550005678@{DOMAIN}"], "toner low",
                                          sender="hp4050@printers.corp.test"))
        assert refused == {}
        rows = await gw.store.call(gw.store.messages.list_messages, limit=10)
        assert sorted(r["to_number"] for r in rows) == ["+15550001234", "+15550005678"]
        assert len({r["batch_id"] for r in rows}) == 1


async def test_auth_with_an_api_key(tmp_path: Path) -> None:
    key_file = tmp_path / "mail.key"
    cfg = _config(tmp_path, [], key_file, allowed_senders=(), api_key_file="")
    async with running_gateway(cfg) as (gw, _c):
        port = gw.mail_listener.bound[0][1]
        _, key = await gw.store.call(gw.store.keys.create_api_key, "printer", ["send"])
        _, read_only = await gw.store.call(gw.store.keys.create_api_key, "reader", ["read"])
        msg = _mail(f"+15550001234@{DOMAIN}", "from an authenticated client", sender="anyone@anywhere.test")
        with pytest.raises(smtplib.SMTPSenderRefused):  # no AUTH and no allowed senders
            await send(port, msg)
        with pytest.raises(smtplib.SMTPAuthenticationError) as a:
            await send(port, msg, login=("printer", "not-a-key"))
        assert a.value.smtp_code == 535
        with pytest.raises(smtplib.SMTPAuthenticationError):
            await send(port, msg, login=("reader", read_only))  # no send scope
        assert await send(port, msg, login=("printer", key)) == {}
        [row] = await gw.store.call(gw.store.messages.list_messages, limit=10)
        key_row = await gw.store.call(gw.store.keys.verify_api_key, key)
        assert row["api_key_id"] == key_row.id and row["text"] == "from an authenticated client"


def test_auth_needs_tls_unless_loopback_or_allowed() -> None:
    # (A listener that is not on loopback cannot be opened by a loopback-only test: the
    # decision is checked here, and aiosmtpd answers 538 without TLS when it says so.)
    from gsmgw.mail.listener import auth_needs_tls, is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("127.0.0.2") and is_loopback("::1")
    assert is_loopback("localhost") and not is_loopback("0.0.0.0") and not is_loopback("192.0.2.1")
    assert auth_needs_tls("0.0.0.0", False) and auth_needs_tls("192.0.2.1", False)
    assert not auth_needs_tls("0.0.0.0", True) and not auth_needs_tls("127.0.0.1", False)


def test_mail_text_plain_part_of_multipart_and_charsets() -> None:
    m = EmailMessage()
    m["Subject"] = "Alert  injected"
    m.set_content("Température: 41 °C\r\nfin\n-- \nsig", charset="iso-8859-1")
    m.add_alternative("<b>html</b>", subtype="html")
    assert mail_text(bytes(m), "ignore") == "Température: 41 °C\nfin"
    assert mail_text(bytes(m), "prepend") == "Alert injected\nTempérature: 41 °C\nfin"


async def test_hostile_mail_gets_a_clear_reply_and_the_listener_stays_up(tmp_path: Path) -> None:
    key_file = tmp_path / "mail.key"
    cfg = _config(tmp_path, [], key_file)
    async with running_gateway(cfg) as (gw, _c):
        await _gateway_key(gw, key_file)
        port = gw.mail_listener.bound[0][1]
        rcpt = f"+15550001234@{DOMAIN}"

        def raw(data: bytes) -> Any:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                return client.sendmail("monitor@corp.test", [rcpt], data)

        # Broken MIME, a bogus charset, NULs and invalid UTF-8: refused or sent, never a 5xx traceback.
        for data in (b"Content-Type: multipart/mixed; boundary=\"x\"\r\n\r\n--x\r\nContent-Type: text/plain\r\n",
                     b"Content-Type: text/plain; charset=nonsense-42\r\n\r\nhello \xff\xfe\r\n",
                     b"Subject: \x00\x01\r\n\r\n\x00 text with NUL\r\n"):
            try:
                await asyncio.to_thread(raw, data)
            except smtplib.SMTPDataError as exc:
                assert exc.smtp_code in (550, 552) and b"Traceback" not in exc.smtp_error, exc
        # A client that hangs up in the middle of a transaction.
        def hang_up() -> None:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                client.ehlo("x")
                client.mail("monitor@corp.test")
                client.rcpt(rcpt)

        await asyncio.to_thread(hang_up)
        assert await send(port, _mail(rcpt, "still here")) == {}
        rows = await gw.store.call(gw.store.messages.list_messages, limit=10)
        assert "still here" in {r["text"] for r in rows}
