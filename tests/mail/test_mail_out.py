"""SMS → e-mail over a real SMTP server (aiosmtpd): the mail's content and headers,
once per event; a mail server that is down for a while gets the mail afterwards,
exactly once; a permanent refusal does not block the mail after it."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from gsmgw.config import EmailConfig, EmailForward, SmtpOutConfig
from gsmgw.emulator import FakeModemPool
from gsmgw.mail.compose import message_id
from tests.helpers import make_config, running_gateway
from tests.inbound.helpers import wait_until
from tests.mail.conftest import MailServer, free_port


def _email(port: int, *forwards: EmailForward) -> EmailConfig:
    return EmailConfig(
        smtp=SmtpOutConfig(host="127.0.0.1", port=port, security="none", from_address="gsmgw@gw.test",
                           timeout_s=2.0),
        forward=forwards, poll_interval_s=0.02, retry_initial_s=0.05, retry_max_s=0.2)


async def test_inbound_sms_is_mailed_once_with_sender_sim_time_and_stable_message_id(
        tmp_path: Path, mail_server: MailServer) -> None:
    async with FakeModemPool(count=1, directory=tmp_path / "ports") as fake:
        cfg = make_config(tmp_path, [str(m.path) for m in fake.modems])
        cfg = dataclasses.replace(cfg, email=_email(
            mail_server.port,
            EmailForward(to=("ops@example.com", "boss@example.com")),
            EmailForward(to=("ops@example.com",), sim="sim1"),  # the same address again: one mail
            EmailForward(to=("uk@example.com",), sender_pattern="+44*"),
            EmailForward(to=("other-sim@example.com",), sim="sim9")))
        async with running_gateway(cfg) as (gw, c):
            await gw.pool.slots["sim1"].driver.wait_ready(10)
            text = "Réunion déplacée à 15h.\nSecond line; it stays whole."
            fake.modems[0].modem.inject_sms("+15550001111", text)
            [mail] = await mail_server.wait_for(1)
            _, inbox = await c.request("GET", "/api/v1/inbox")
            [sms] = inbox["items"]
            msg = mail.message
            assert sorted(mail.rcpt_tos) == ["boss@example.com", "ops@example.com"]
            assert mail.mail_from == "gsmgw@gw.test" and msg["From"] == "gsmgw@gw.test"
            assert msg["Subject"] == "SMS from +15550001111 on sim1: Réunion déplacée à 15h. Second line; it stays whole."
            assert text in mail.body
            assert "From:       +15550001111" in mail.body and "SIM:        sim1" in mail.body
            assert sms["received_at"] in mail.body and sms["id"] in mail.body
            assert msg["Auto-Submitted"] == "auto-generated"
            ev_id = int(msg["X-Gsmgw-Event-Id"])
            assert msg["Message-ID"] == message_id(ev_id, "sms:received", "gsmgw@gw.test")
            assert msg["Message-ID"] == f"<gsmgw.ev{ev_id}.sms-received@gw.test>"
            # A sender the +44 forward matches goes there too (and not twice to ops@).
            fake.modems[0].modem.inject_sms("+447700900123", "hello uk")
            await mail_server.wait_for(2)
            assert sorted(mail_server.received[1].rcpt_tos) == ["boss@example.com", "ops@example.com",
                                                                "uk@example.com"]
            # Nothing else comes: the cursor is past both events.
            await wait_until(lambda: gw.mail_forwarder.consumer.handled_total >= 2, what="both handled")
            await asyncio.sleep(0.2)
            assert len(mail_server.received) == 2


async def test_mail_server_down_for_a_while_then_the_mail_arrives_exactly_once(tmp_path: Path) -> None:
    server = MailServer(port=free_port())  # the port is known, nothing listens on it yet
    async with FakeModemPool(count=1, directory=tmp_path / "ports") as fake:
        cfg = make_config(tmp_path, [str(m.path) for m in fake.modems])
        cfg = dataclasses.replace(cfg, email=_email(server.port, EmailForward(to=("ops@example.com",))))
        try:
            async with running_gateway(cfg) as (gw, c):
                await gw.pool.slots["sim1"].driver.wait_ready(10)
                fake.modems[0].modem.inject_sms("+15550002222", "while the mail server is down")
                fake.modems[0].modem.inject_sms("+15550003333", "and a second one")
                consumer = gw.mail_forwarder.consumer
                # Refused connections, retried with backoff; the cursor stays before the first.
                await wait_until(lambda: consumer.failed_total >= 3, what="failed attempts")
                assert consumer.handled_total == 0
                await server.up()
                await server.wait_for(2)
                await wait_until(lambda: consumer.handled_total >= 2, what="handled")
                await asyncio.sleep(0.3)
                assert len(server.received) == 2
                assert [m.body.strip().splitlines()[-1] for m in server.received] == [
                    "while the mail server is down", "and a second one"]  # in order
                assert len({m.message["Message-ID"] for m in server.received}) == 2
        finally:
            await server.down()


async def test_a_permanent_refusal_is_skipped_and_the_next_mail_still_goes(
        tmp_path: Path, mail_server: MailServer) -> None:
    mail_server.refuse.add("gone@example.com")
    async with FakeModemPool(count=1, directory=tmp_path / "ports") as fake:
        cfg = make_config(tmp_path, [str(m.path) for m in fake.modems])
        cfg = dataclasses.replace(cfg, email=_email(
            mail_server.port, EmailForward(to=("gone@example.com",), sender_pattern="+1555000444*"),
            EmailForward(to=("ops@example.com",), sender_pattern="+1555000555*")))
        async with running_gateway(cfg) as (gw, c):
            await gw.pool.slots["sim1"].driver.wait_ready(10)
            fake.modems[0].modem.inject_sms("+15550004444", "to a mailbox that is gone")
            await wait_until(lambda: gw.mail_forwarder.refused_total == 1, what="refused for good")
            fake.modems[0].modem.inject_sms("+15550005555", "after it")
            [mail] = await mail_server.wait_for(1)
            assert mail.rcpt_tos == ["ops@example.com"] and "after it" in mail.body


async def test_a_failed_delivery_is_mailed_to_forwards_that_include_failures(
        tmp_path: Path, mail_server: MailServer) -> None:
    # The network reports 0x41 (permanent error: incompatible destination) for this number.
    async with FakeModemPool(count=1, directory=tmp_path / "ports", report_delay_s=0.01,
                             delivery_rule=lambda number: 0x41 if number.endswith("0999") else 0) as fake:
        cfg = make_config(tmp_path, [str(m.path) for m in fake.modems])
        cfg = dataclasses.replace(cfg, email=_email(
            mail_server.port, EmailForward(to=("ops@example.com",)),
            EmailForward(to=("failures@example.com",), include_failures=True)))
        async with running_gateway(cfg) as (gw, c):
            await gw.pool.slots["sim1"].driver.wait_ready(10)
            status, sent = await c.request("POST", "/api/v1/messages",
                                           json={"to": "+15550000999", "text": "your code is 1234"})
            assert status == 202, sent
            await c.wait_state(sent["id"], {"failed"})
            [mail] = await mail_server.wait_for(1)
            assert mail.rcpt_tos == ["failures@example.com"]  # not the forward without include_failures
            assert mail.message["Subject"].startswith("SMS to +15550000999 failed")
            assert "your code is 1234" in mail.body and "SIM:        sim1" in mail.body
            assert sent["id"] in mail.body and mail.message["X-Gsmgw-Event"] == "sms:failed"
