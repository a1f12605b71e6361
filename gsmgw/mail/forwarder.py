"""SMS → e-mail: a consumer of the durable outbox (cursor ``email``) that mails inbound
SMS, delivery failures and ``rule.email`` events through the configured SMTP server.

Sent with aiosmtplib (pure Python, asyncio): a send in progress is cancelled at once
when the gateway stops, with no thread left blocked in a socket, and one slow server
never holds a worker thread the store needs.

Delivery: the cursor moves past an event only once the server accepted the mail
(``250`` after DATA). While the server is down, refuses with a 4xx, or the login
fails, the same event is retried with capped exponential backoff and the events
after it wait: an outage only delays mail. In the normal case each event is mailed
once; across a crash after the server's ``250`` and before the cursor moved, it is
mailed again with the same Message-ID (at least once). A permanent refusal of the
mail itself (every recipient refused with 5xx, or 5xx after DATA) is logged and
skipped: retrying would block every later mail forever.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiosmtplib

from gsmgw.config import Config, EmailConfig
from gsmgw.mail import compose
from gsmgw.outbox import OutboxConsumer, capped_backoff
from gsmgw.store import OutboxEvent, Store

log = logging.getLogger(__name__)

CONSUMER = "email"
EVENT_TYPES = ("sms:received", "sms:failed", "rule.email")


def _first_line(path: str) -> str:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return lines[0].strip() if lines else ""


class MailForwarder:
    """Started by the daemon when ``[email.smtp] host`` is set."""

    def __init__(self, config: Callable[[], Config], store: Store) -> None:
        self.config = config
        self.store = store
        self.consumer: OutboxConsumer | None = None
        self.sent_total = 0
        self.refused_total = 0  # permanent refusals, skipped

    @property
    def cfg(self) -> EmailConfig:
        return self.config().email

    async def start(self) -> None:
        c = self.cfg
        self.consumer = OutboxConsumer(
            CONSUMER, self.store, self.handle, types=EVENT_TYPES,
            backoff=capped_backoff(c.retry_initial_s, max(c.retry_initial_s, c.retry_max_s)),
            poll_interval_s=c.poll_interval_s,
        )
        await self.consumer.start()

    async def stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()
            self.consumer = None

    def notify(self) -> None:
        if self.consumer is not None:
            self.consumer.notify()

    async def handle(self, ev: OutboxEvent) -> None:
        cfg = self.config()
        try:
            payload = json.loads(ev.payload or "{}")
        except ValueError:
            payload = {}
        if not isinstance(payload, dict):
            payload = {}
        failed = None
        if ev.type == "sms:failed":
            if not any(f.include_failures for f in cfg.email.forward) or not ev.message_id:
                return
            failed = await self.store.call(self.store.messages.get_message, ev.message_id)
            if failed is None:
                return
        to = compose.recipients(cfg.email, cfg.rules, ev.type, payload, failed)
        if not to:
            return
        smtp = cfg.email.smtp
        if not smtp.host:
            if ev.type == "rule.email":
                log.warning("rule %s: e-mail action but no [email.smtp] host; event %d not mailed",
                            payload.get("rule"), ev.id)
            return
        msg = compose.build(ev.id, ev.type, ev.created_at, payload, to=to, from_address=smtp.from_address,
                            failed=failed)
        await self.send(msg, to)
        log.info("mailed event %d (%s) to %s", ev.id, ev.type, ", ".join(to))

    async def send(self, msg: Any, to: list[str]) -> None:
        """Send one mail; returns once the server accepted it (or refused it for good)."""
        smtp = self.cfg.smtp
        password = None
        if smtp.password_file:
            # Read on each send: a fixed password file applies without a restart.
            password = await asyncio.to_thread(_first_line, smtp.password_file)
        tls_context = None
        if smtp.security != "none":
            tls_context = ssl.create_default_context(cafile=smtp.ca_file or None)
        try:
            errors, _reply = await aiosmtplib.send(
                msg, sender=smtp.from_address, recipients=to, hostname=smtp.host, port=smtp.port,
                username=smtp.username or None, password=password, timeout=smtp.timeout_s,
                use_tls=smtp.security == "tls",
                start_tls={"auto": None, "starttls": True, "tls": False, "none": False}[smtp.security],
                tls_context=tls_context,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            if codes and all(c >= 500 for c in codes):
                self.refused_total += 1
                log.error("mail %s refused for good by %s (every recipient: %s); skipped", msg["Message-ID"],
                          smtp.host, "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients))
                return
            raise
        except aiosmtplib.SMTPDataError as exc:
            if exc.code >= 500:
                self.refused_total += 1
                log.error("mail %s refused for good by %s after DATA (%d %s); skipped", msg["Message-ID"],
                          smtp.host, exc.code, exc.message)
                return
            raise
        for rcpt, resp in errors.items():
            log.warning("mail %s: %s refused %s (%d %s)", msg["Message-ID"], smtp.host, rcpt, resp.code,
                        resp.message)
        self.sent_total += 1


__all__ = ["CONSUMER", "EVENT_TYPES", "MailForwarder"]
