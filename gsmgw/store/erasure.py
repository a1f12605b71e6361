"""Erasure of a phone number everywhere, walking a registry of where personal data lives.

``REGISTRY`` names, for every table in ``tables.metadata``, the columns that hold a
phone number (``numbers``: a row whose number is the erased one is anonymised:
those columns become ``[erased]`` and ``on_match`` applies, e.g. the message text
is emptied), the columns of free text or JSON that may mention it (``texts``:
every rendering of the number is replaced by ``[erased]``), and encodings of
either (``derived``: hex PDUs, blanked on any row the erasure touched). A table
without personal data is registered with an empty entry: ``unregistered()`` lists
the tables nobody declared, and a test fails on any (a new table must say).
Features register their own tables with ``register`` (campaigns' contacts at merge).

Renderings looked for: E.164 with or without "+", "00" + country code, the national
form ("0612345678") and the national significant number, with spaces, dots,
dashes, slashes or brackets between digits ("+33 6 12-34-56-78", "(0)6 ..."), never
as part of a longer run of digits. Text columns are narrowed in SQL by the last
four digits (with at most one separator among them), then matched in Python.

Kept: the opt-out, as a tombstone holding ``sha256:`` + the first 25 hex digits of
the SHA-256 of the E.164 number (so the gateway still refuses to send to it), not
the number. A hash of a phone number is pseudonymous, not anonymous: numbers are
few enough to be guessed and hashed. Where the law requires the number itself on a
suppression list, keep it outside the gateway's store.

Messages to the number that are still queued are cancelled first; the report
aggregates (no number in them) are left as they are.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Any

from sqlalchemy import Connection, delete, insert, or_, select, update

from gsmgw.domain import EventType, MessageState
from gsmgw.numbers import number_parts, same_number, to_e164
from gsmgw.store import tables as t
from gsmgw.store.events import insert_message_events
from gsmgw.store.executor import Executor
from gsmgw.store.records import utcnow

ERASED = "[erased]"
_SEP = r"[\s.\-()/]*"


@dataclasses.dataclass(frozen=True)
class PersonalData:
    numbers: tuple[str, ...] = ()
    texts: tuple[str, ...] = ()
    derived: tuple[str, ...] = ()
    on_match: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Delete a matching row instead (a row whose key is the number: nothing left to keep).
    delete_on_match: bool = False


REGISTRY: dict[str, PersonalData] = {
    "api_keys": PersonalData(texts=("name",)),
    "modems": PersonalData(numbers=("own_number",), texts=("state_reason",), on_match={"own_number": ""}),
    "messages": PersonalData(
        numbers=("to_number",),
        texts=("text", "callback_url", "door_data", "error_text", "idempotency_key", "report_mark"),
        on_match={"text": "", "door_data": None, "callback_url": None, "error_text": None},
    ),
    "message_parts": PersonalData(numbers=("recipient",), texts=("error_text",)),
    "inbound_messages": PersonalData(numbers=("sender",), texts=("text", "missing", "tags"),
                                     on_match={"text": ""}),
    "inbound_parts": PersonalData(numbers=("sender",), texts=("text",), derived=("user_data", "pdu"),
                                  on_match={"text": ""}),
    "status_reports": PersonalData(numbers=("recipient",), texts=("meaning",)),
    "events": PersonalData(texts=("payload",)),
    "optouts": PersonalData(numbers=("number",), texts=("note", "keyword")),  # tombstone, see erase_table
    "webhook_cursor": PersonalData(),
    "webhook_deliveries": PersonalData(texts=("body", "url", "last_error")),
    "smpp_accounts": PersonalData(texts=("note",)),
    "smpp_parts": PersonalData(texts=("request",), derived=("user_data",)),
    "smpp_deliveries": PersonalData(texts=("pdu", "ref", "last_error")),
    "report_daily": PersonalData(),  # counts per day, SIM, key and campaign: no number
    "report_monthly": PersonalData(),
    "audit_log": PersonalData(texts=("target", "detail")),
    "job_leases": PersonalData(),
    # Inbound rules (issue 19).
    "rule_runs": PersonalData(texts=("detail",)),
    "rule_replies": PersonalData(numbers=("sender",)),
    # SIM care (issue 20): first contacts per SIM and day are keyed by the number.
    "sim_care": PersonalData(),
    "sim_usage": PersonalData(),
    "sim_contacts": PersonalData(numbers=("number",), delete_on_match=True),
    # Recurring schedules and SIM keep-alive (issue 20): a schedule's message JSON holds its
    # recipients (an erased one becomes "[erased]" there, and that occurrence is refused).
    "schedules": PersonalData(texts=("name", "message", "last_error")),
    "sim_keepalive": PersonalData(),
    "keepalive_runs": PersonalData(texts=("detail",)),
    # Contacts and campaigns (issue 21 parts 1-2): a contact is deleted (its tags and group
    # memberships go with it, ON DELETE CASCADE); a campaign's recipient row is anonymised.
    "contacts": PersonalData(numbers=("number",), texts=("name", "fields"), delete_on_match=True),
    "contact_groups": PersonalData(texts=("name",)),
    "contact_group_members": PersonalData(),
    "contact_tags": PersonalData(),
    "campaigns": PersonalData(texts=("name", "template", "target", "last_error")),
    "campaign_recipients": PersonalData(numbers=("number",), texts=("text",), on_match={"text": ""}),
}


def register(table: str, personal: PersonalData) -> None:
    """Declare where a feature's table keeps numbers and text (before any erasure)."""
    REGISTRY[table] = personal


def unregistered() -> list[str]:
    """Tables of the schema that declare nothing (a test fails on any)."""
    return sorted(set(t.metadata.tables) - set(REGISTRY))


def number_hash(e164: str) -> str:
    """What records an erased number (the audit log, the opt-out tombstone)."""
    return "sha256:" + hashlib.sha256(e164.encode()).hexdigest()[:25]


def tombstone_of(number: str, region: str | None) -> str | None:
    e164 = to_e164(number, region)
    return number_hash(e164) if e164 else None


class NumberMatcher:
    """Finds and replaces the renderings of one number in text."""

    def __init__(self, e164: str, region: str | None) -> None:
        self.e164 = e164
        self.region = region
        cc, nsn, national = number_parts(e164)
        trunk = national[: len(national) - len(nsn)] if national.endswith(nsn) else ""

        def digits(ds: str) -> str:
            return _SEP.join(re.escape(d) for d in ds)

        prefixes = [rf"(?:\+|00){_SEP}{digits(cc)}{_SEP}(?:\(0\){_SEP})?", rf"{digits(cc)}{_SEP}"]
        if trunk:
            prefixes.append(rf"{digits(trunk)}{_SEP}")
        self.pattern = re.compile(rf"(?<!\d)(?:{'|'.join(prefixes)})?{digits(nsn)}(?!\d)")
        tail = nsn[-4:]
        self.like = [f"%{tail}%"] + [f"%{tail[:i]}_{tail[i:]}%" for i in range(1, len(tail))]

    def found(self, value: Any) -> bool:
        return isinstance(value, str) and self.pattern.search(value) is not None

    def redact(self, value: str) -> str:
        return self.pattern.sub(ERASED, value)

    def is_number(self, value: Any) -> bool:
        if not isinstance(value, str) or not value or value == ERASED:
            return False
        return self.found(value) or same_number(value, self.e164, self.region)


class ErasureRepo:
    def __init__(self, db: Executor, *, region: str | None = None) -> None:
        self.db = db
        self.region = region

    def tables(self) -> list[str]:
        return [name for name in t.metadata.tables if name in REGISTRY]

    def erase_table(self, name: str, e164: str) -> int:
        """Erase the number from one table (one transaction); rows changed."""
        personal = REGISTRY[name]
        cols = (*personal.numbers, *personal.texts)
        if not cols:
            return 0
        table = t.metadata.tables[name]
        m = NumberMatcher(e164, self.region)
        conds = [table.c[c].like(p) for c in cols for p in m.like]
        changed = 0
        with self.db.tx() as conn:
            if name == "messages":
                self._cancel_queued(conn, m)
            for row in conn.execute(select(table).where(or_(*conds))).mappings().all():
                values: dict[str, Any] = {}
                matched = any(m.is_number(row[c]) for c in personal.numbers)
                pk = [table.c[k.name] == row[k.name] for k in table.primary_key.columns]
                if matched and name == "optouts":
                    self._tombstone(conn, row, e164)
                    changed += 1
                    continue
                if matched and personal.delete_on_match:
                    conn.execute(delete(table).where(*pk))
                    changed += 1
                    continue
                if matched:
                    values.update({c: ERASED for c in personal.numbers if m.is_number(row[c])})
                    values.update(personal.on_match)
                for c in personal.texts:
                    current = values.get(c, row[c])
                    if m.found(current):
                        values[c] = m.redact(current)
                if not values:
                    continue
                values.update({c: "" for c in personal.derived})
                conn.execute(update(table).where(*pk).values(**values))
                changed += 1
        return changed

    def _cancel_queued(self, conn: Connection, m: NumberMatcher) -> None:
        msgs, parts = t.messages, t.message_parts
        rows = conn.execute(select(msgs.c.id, msgs.c.to_number).where(
            msgs.c.state == MessageState.QUEUED, or_(*[msgs.c.to_number.like(p) for p in m.like]))).all()
        ids = [r.id for r in rows if m.is_number(r.to_number)]
        if ids:
            conn.execute(update(msgs).where(msgs.c.id.in_(ids), msgs.c.state == MessageState.QUEUED)
                         .values(state=MessageState.CANCELLED, error_code="erased", lease_owner=None))
            conn.execute(update(parts).where(parts.c.message_id.in_(ids), parts.c.state == MessageState.QUEUED)
                         .values(state=MessageState.CANCELLED))
            insert_message_events(conn, EventType.SMS_CANCELLED, ids, utcnow())

    def _tombstone(self, conn: Connection, row: Any, e164: str) -> None:
        o = t.optouts
        tomb = number_hash(e164)
        conn.execute(delete(o).where(o.c.number == row["number"]))
        if conn.execute(select(o.c.number).where(o.c.number == tomb)).first() is None:
            conn.execute(insert(o).values(
                number=tomb, number_key="#" + tomb[7:14], source=row["source"], keyword="",
                inbound_id=None, note="erased", created_at=row["created_at"],
            ))


__all__ = [
    "ERASED",
    "REGISTRY",
    "ErasureRepo",
    "NumberMatcher",
    "PersonalData",
    "number_hash",
    "register",
    "tombstone_of",
    "unregistered",
]
