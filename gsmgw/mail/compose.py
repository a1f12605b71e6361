"""What a forwarded SMS looks like as an e-mail, and who gets it (pure: no I/O).

One outbox event makes one mail to every address it is for, with a Message-ID made
from the event id (``<gsmgw.ev42.sms-received@example.com>``): a mail sent again after
a crash between the server's acceptance and the cursor's advance carries the same
Message-ID, which lets a mail client or an archive drop the repeat.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from gsmgw.config import EmailConfig, RuleConfig

SUBJECT_TEXT_CHARS = 60
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


def one_line(text: str, limit: int) -> str:
    """``text`` on one line (control characters and newlines become a space), cut to ``limit``."""
    s = _CONTROL.sub(" ", text).strip()
    return s if len(s) <= limit else s[: limit - 1].rstrip() + "…"


def sender_matches(pattern: str, sender: str) -> bool:
    """A glob on the sender as received ("+4477*", "BANK*"), case-insensitive."""
    return fnmatch.fnmatchcase(sender.casefold(), pattern.casefold())


def recipients(cfg: EmailConfig, rules: tuple[RuleConfig, ...], event_type: str,
               payload: Mapping[str, Any], failed: Mapping[str, Any] | None = None) -> list[str]:
    """The addresses one event is mailed to (none: the event is not for e-mail).

    ``sms:received`` goes to each ``[[email.forward]]`` whose sim and sender_pattern
    match; ``sms:failed`` (``failed`` is the message row) only to those with
    include_failures; ``rule.email`` to the addresses it names that a ``[[rules]]``
    entry still lists (targets stay the admin's, even for events written earlier).
    """
    out: list[str] = []
    if event_type == "rule.email":
        allowed = {a.casefold() for r in rules for a in r.email}
        wanted = payload.get("to")
        if isinstance(wanted, list):
            out = [a for a in wanted if isinstance(a, str) and a.casefold() in allowed]
    elif event_type == "sms:received":
        sim, sender = str(payload.get("sim") or ""), str(payload.get("from") or "")
        for f in cfg.forward:
            if f.sim and f.sim != sim:
                continue
            if f.sender_pattern and not sender_matches(f.sender_pattern, sender):
                continue
            out += f.to
    elif event_type == "sms:failed" and failed is not None:
        sim, number = str(failed.get("modem_id") or ""), str(failed.get("to_number") or "")
        for f in cfg.forward:
            if not f.include_failures or (f.sim and f.sim != sim):
                continue
            if f.sender_pattern and not sender_matches(f.sender_pattern, number):
                continue
            out += f.to
    return list(dict.fromkeys(out))  # each address once, in order


def _domain(address: str) -> str:
    return address.rpartition("@")[2] or "localhost"


def message_id(event_id: int, event_type: str, from_address: str) -> str:
    kind = re.sub(r"[^a-z0-9]+", "-", event_type.lower()).strip("-")
    return f"<gsmgw.ev{event_id}.{kind}@{_domain(from_address)}>"


def _when(value: Any) -> str:
    return str(value) if value else "-"


def build(event_id: int, event_type: str, created_at: dt.datetime, payload: Mapping[str, Any], *,
          to: list[str], from_address: str, failed: Mapping[str, Any] | None = None) -> EmailMessage:
    """The mail for one event: a readable subject, the full text, sender, SIM and times."""
    msg = EmailMessage()
    lines: list[str]
    if event_type == "sms:failed" and failed is not None:
        number = str(failed.get("to_number") or "?")
        why = " ".join(x for x in (str(failed.get("error_code") or ""), str(failed.get("error_text") or "")) if x)
        subject = f"SMS to {number} failed" + (f": {why}" if why else "")
        lines = [
            f"To:         {number}",
            f"SIM:        {failed.get('modem_id') or '-'}",
            f"Created:    {_when(failed.get('created_at'))}",
            f"Error:      {why or '-'}",
            f"Message id: {failed.get('id')}",
        ]
        text = str(failed.get("text") or "")
    else:
        sms = payload.get("message") if event_type == "rule.email" else payload
        sms = sms if isinstance(sms, Mapping) else {}
        sender, text = str(sms.get("from") or "?"), str(sms.get("text") or "")
        subject = f"SMS from {sender}"
        if sms.get("sim"):
            subject += f" on {sms.get('sim')}"
        if text:
            subject += f": {one_line(text, SUBJECT_TEXT_CHARS)}"
        if event_type == "rule.email" and payload.get("rule"):
            subject = f"[{payload.get('rule')}] {subject}"
        lines = [
            f"From:       {sender}",
            f"SIM:        {sms.get('sim') or '-'}",
            f"Received:   {_when(sms.get('received_at'))}",
            f"Sent at:    {_when(sms.get('sent_at'))} (the network's time stamp)",
            f"Message id: {sms.get('id')}",
        ]
        if sms.get("complete") is False:
            lines.append(f"Incomplete: parts {sms.get('missing')} of {sms.get('parts_total')} never came")
    msg["Subject"] = one_line(subject, 200)
    msg["From"] = from_address
    msg["To"] = ", ".join(to)
    msg["Date"] = format_datetime(created_at if created_at.tzinfo else created_at.replace(tzinfo=dt.UTC))
    msg["Message-ID"] = message_id(event_id, event_type, from_address)
    # RFC 3834: vacation responders and ticket systems must not answer this.
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Gsmgw-Event-Id"] = str(event_id)
    msg["X-Gsmgw-Event"] = event_type
    msg.set_content("\n".join(lines) + "\n\n" + text + "\n", charset="utf-8")
    return msg


__all__ = ["build", "message_id", "one_line", "recipients", "sender_matches"]
