"""Inbound rules' repository (``store.rules``): what a rule did, tags, the reply window.

- ``apply_rule`` does a rule's store-side work on one inbound message in one
  transaction: its tags, and the outbox events that hand work to the doors
  (``rule.email``, ``rule.webhook``, ``rule.mqtt``), marked done in ``rule_runs``;
  a second call for the same (message, rule) changes nothing, so an outbox event
  replayed after a crash does not forward twice.
- ``take_reply`` is the auto-reply rate limit: at most ``limit`` replies of a rule to
  one sender per window, counted in the store (``rule_replies``), so two gateways
  sharing a store, or two bots answering each other, cannot loop. On PostgreSQL the
  count and the insert run under an advisory lock on (rule, sender).
- ``record_run`` keeps a reply's or a command's outcome (exit status, capped output).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Engine, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from gsmgw.domain import EventType
from gsmgw.store import tables as t
from gsmgw.store.events import insert_event


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def split_tags(value: str | None) -> list[str]:
    return [x for x in (value or "").split(",") if x]


class RulesRepo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def apply_rule(
        self,
        inbound_id: str,
        rule: str,
        *,
        tags: Iterable[str] = (),
        events: Sequence[tuple[EventType, dict[str, Any]]] = (),
        modem_id: str | None = None,
        now: dt.datetime | None = None,
    ) -> bool:
        """Tag the message and write the rule's events, once; False if done before."""
        now = now or _now()
        im = t.inbound_messages
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(t.rule_runs).values(
                    inbound_id=inbound_id, rule=rule, action="apply", status="done",
                    detail=json.dumps({"tags": list(tags), "events": [str(e) for e, _p in events]}),
                    created_at=now))
                new_tags = list(tags)
                if new_tags:
                    current = conn.execute(select(im.c.tags).where(im.c.id == inbound_id)).scalar()
                    merged = split_tags(current)
                    merged += [x for x in new_tags if x not in merged]
                    conn.execute(update(im).where(im.c.id == inbound_id)
                                 .values(tags=",".join(merged)[:500]))
                for type_, payload in events:
                    insert_event(conn, type_, now, modem_id=modem_id, payload=payload)
        except IntegrityError:
            return False
        return True

    def take_reply(self, rule: str, sender: str, inbound_id: str, *, limit: int, window_s: float,
                   now: dt.datetime | None = None) -> bool:
        """May this rule auto-reply to ``sender`` for this message? Counts it if so.

        True again for the same (message, rule): a replayed event finds its reply
        allowed, and the intake's idempotency key keeps it to one message.
        """
        now = now or _now()
        r = t.rule_replies
        try:
            with self.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                                 {"k": f"gsmgw-rule-reply|{rule}|{sender}"})
                seen = conn.execute(select(r.c.id).where(r.c.inbound_id == inbound_id, r.c.rule == rule)).first()
                if seen is not None:
                    return True
                since = now - dt.timedelta(seconds=window_s)
                n = conn.execute(select(func.count()).select_from(r).where(
                    r.c.rule == rule, r.c.sender == sender, r.c.created_at >= since)).scalar_one()
                if n >= limit:
                    return False
                conn.execute(insert(r).values(rule=rule, sender=sender, inbound_id=inbound_id, created_at=now))
        except IntegrityError:  # the same message's reply counted by another host meanwhile
            return True
        return True

    def record_run(self, inbound_id: str, rule: str, action: str, status: str, detail: str = "",
                   now: dt.datetime | None = None) -> None:
        """Record (or overwrite) the outcome of a reply or a command."""
        now = now or _now()
        rr = t.rule_runs
        values = {"status": status[:16], "detail": detail, "created_at": now}
        with self.engine.begin() as conn:
            res = conn.execute(update(rr).where(rr.c.inbound_id == inbound_id, rr.c.rule == rule,
                                                rr.c.action == action).values(**values))
            if res.rowcount == 0:
                conn.execute(insert(rr).values(inbound_id=inbound_id, rule=rule, action=action, **values))

    def run_status(self, inbound_id: str, rule: str, action: str) -> str | None:
        rr = t.rule_runs
        with self.engine.connect() as conn:
            return conn.execute(select(rr.c.status).where(
                rr.c.inbound_id == inbound_id, rr.c.rule == rule, rr.c.action == action)).scalar()

    def list_runs(self, *, inbound_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        rr = t.rule_runs
        q = select(rr).order_by(rr.c.id).limit(limit)
        if inbound_id is not None:
            q = q.where(rr.c.inbound_id == inbound_id)
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(q).all()]


__all__ = ["RulesRepo", "split_tags"]
