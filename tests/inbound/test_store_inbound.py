"""Inbound, opt-out and webhook-outbox SQL on SQLite and PostgreSQL (the ``store`` fixture)."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

from gsmgw.config import WebhooksConfig, WebhookSubscription
from gsmgw.pool.optout import KeywordMatcher, join_parts, part_dedup_key
from gsmgw.sms import decode_pdu, encode_deliver
from gsmgw.store import InboundPart, NewMessage
from gsmgw.webhooks import payload

T0 = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.UTC)
ALICE = "+447700900601"
MATCH = KeywordMatcher(["stop"], ["start"])


def parts_of(sender: str, text: str, *, modem: str = "sim1", **kw: Any) -> list[InboundPart]:
    pdus = encode_deliver(sender, text, scts=T0, **kw)
    out = []
    for pdu in [pdus] if isinstance(pdus, str) else pdus:
        d = decode_pdu(pdu)
        c = d.concat
        out.append(InboundPart(
            modem_id=modem, dedup_key=part_dedup_key(modem, d), sender=d.originator, scts=d.scts,
            encoding=str(d.encoding), text=d.text, user_data=d.user_data.hex(), pdu=pdu,
            concat_ref=c.reference if c else None, concat_bits=c.bits if c else None,
            concat_total=c.total if c else 1, concat_seq=c.sequence if c else 1,
        ))
    return out


def ingest(store: Any, part: InboundPart, now: dt.datetime = T0) -> Any:
    return store.inbound.ingest_inbound_part(part, join=join_parts, classify=MATCH.classify, now=now)


def test_single_part_stored_once(store: Any) -> None:
    [p] = parts_of(ALICE, "hello")
    first = ingest(store, p)
    assert not first.duplicate and first.message is not None and first.message.text == "hello"
    again = ingest(store, p)
    assert again.duplicate and again.message is None
    [row] = store.inbound.list_inbound()
    assert row["sender"] == ALICE and row["complete"] and row["parts_total"] == 1
    assert row["dedup_key"] == p.dedup_key
    assert len(store.events.list_events(type_="sms:received")) == 1


def test_multipart_out_of_order_with_duplicates_and_16bit_reference(store: Any) -> None:
    text = "Ж😀 surrogate pairs split across parts " * 6
    parts = parts_of(ALICE, text, concat_ref=0xBEEF, concat_16bit=True)
    assert len(parts) >= 3 and {p.concat_bits for p in parts} == {16}
    order = [parts[-1], parts[0], parts[-1], *parts[1:-1]]
    results = [ingest(store, p) for p in order]
    assert [r.duplicate for r in results] == [False, False, True] + [False] * (len(parts) - 2)
    assert all(r.message is None for r in results[:-1])
    msg = results[-1].message
    assert msg is not None and msg.text == text and msg.complete and msg.parts_received == len(parts)
    assert store.inbound.pending_inbound_parts() == 0
    # The same reference from another sender, or 8-bit, is another message.
    other = parts_of("+447700900602", text, concat_ref=0xBEEF, concat_16bit=True)
    assert ingest(store, other[0]).message is None
    assert store.inbound.pending_inbound_parts() == 1


def test_stale_parts_are_delivered_incomplete(store: Any) -> None:
    parts = parts_of(ALICE, "x" * 400, concat_ref=7)
    assert len(parts) == 3
    ingest(store, parts[0], T0)
    ingest(store, parts[2], T0 + dt.timedelta(seconds=5))
    assert store.inbound.assemble_stale_inbound(timeout_s=60, join=join_parts, classify=MATCH.classify,
                                        now=T0 + dt.timedelta(seconds=59)) == []
    [msg] = store.inbound.assemble_stale_inbound(timeout_s=60, join=join_parts, classify=MATCH.classify,
                                         now=T0 + dt.timedelta(seconds=61))
    assert not msg.complete and msg.missing == (2,) and msg.parts_received == 2 and msg.parts_total == 3
    assert msg.text == parts[0].text + parts[2].text
    # The late part starts a new (incomplete) message rather than vanishing.
    late = ingest(store, parts[1], T0 + dt.timedelta(seconds=70))
    assert not late.duplicate and late.message is None
    [row] = store.inbound.list_inbound(complete=False)
    assert row["missing"] == "2"
    # A repeat of an assembled part is still recognised.
    assert ingest(store, parts[0], T0 + dt.timedelta(seconds=80)).duplicate


def test_reply_links_to_last_outbound_and_prefers_same_sim(store: Any) -> None:
    ids = []
    for sim in ("sim1", "sim2", "sim1"):
        r = store.messages.enqueue([NewMessage(ALICE, f"via {sim}", "gsm7", 1)])
        ids.append(r.message_ids[0])
        with store.engine.begin() as conn:
            from gsmgw.store import tables as t

            conn.execute(t.messages.update().where(t.messages.c.id == ids[-1]).values(modem_id=sim))
    [p] = parts_of(ALICE, "yes", modem="sim2")
    msg = store.inbound.ingest_inbound_part(p, join=join_parts, classify=MATCH.classify).message
    assert msg.in_reply_to == ids[1]
    [p] = parts_of(ALICE, "again", modem="sim3")  # no message from sim3: the last one
    msg = store.inbound.ingest_inbound_part(p, join=join_parts, classify=MATCH.classify).message
    assert msg.in_reply_to == ids[2]
    [p] = parts_of("+447700900699", "who?", modem="sim1")
    assert store.inbound.ingest_inbound_part(p, join=join_parts, classify=MATCH.classify).message.in_reply_to is None


def test_a_reply_in_another_rendering_links_to_the_message_it_answers(store: Any, monkeypatch: Any) -> None:
    """Stored numbers are E.164: a sender that can be placed is looked up by its E.164
    form; one that cannot (national, no region) by its last digits, as before."""
    mid = store.messages.enqueue([NewMessage("+447700900123", "hi", "gsm7", 1)]).message_ids[0]

    texts = iter(f"yes {i}" for i in range(10))  # another SMS each time, not a repeat

    def reply_to(sender: str) -> Any:
        [p] = parts_of(sender, next(texts))
        return store.inbound.ingest_inbound_part(p, join=join_parts, classify=MATCH.classify).message.in_reply_to

    assert reply_to("07700900123") == mid  # no region: found by its last digits
    assert reply_to("447700900123") == mid  # international without the plus
    monkeypatch.setattr(store.inbound, "region", "GB")
    assert reply_to("07700900123") == mid  # national in the region: its E.164 form
    assert reply_to("07700900124") is None
    assert reply_to("+15559990000") is None  # never written to: one index probe, no scan


def test_stop_and_start_keywords_change_the_list_in_the_same_commit(store: Any) -> None:
    [stop] = parts_of(ALICE, "STOP")
    msg = ingest(store, stop).message
    assert msg.optout == ("stop", "stop") and msg.optout_changed
    assert store.optouts.opted_out([ALICE, "+447700900602"]) == {ALICE}
    # National and international renderings of the same number are the same subscriber.
    assert store.optouts.opted_out(["07700900601"]) == {"07700900601"}
    [again] = parts_of(ALICE, "stop.", modem="sim2")
    assert not ingest(store, again).message.optout_changed
    [start] = parts_of(ALICE, "Start")
    assert ingest(store, start).message.optout_changed
    assert store.optouts.opted_out([ALICE]) == set()
    assert store.optouts.add_optout(ALICE) and not store.optouts.add_optout(ALICE)
    assert store.optouts.list_optouts()[0]["source"] == "api"
    assert store.optouts.remove_optout("07700900601") and not store.optouts.remove_optout(ALICE)


# --- webhook outbox ---------------------------------------------------------------


def _targets(cfg: WebhooksConfig) -> Any:
    return lambda ev, msg: payload.targets(cfg, ev, msg)


def test_fanout_claim_settle_and_give_up(store: Any) -> None:
    cfg = WebhooksConfig(subscription=(WebhookSubscription("http://a.lan/h", ("sms:*",)),
                                       WebhookSubscription("http://b.lan/h", ("modem:online",))),
                         allowed_hosts=("cb.lan",))
    store.events.add_event("modem:online", modem_id="sim1", payload={"sim": "sim1"})
    r = store.messages.enqueue([NewMessage(ALICE, "hi", "gsm7", 1, callback_url="http://cb.lan/x")])
    store.messages.cancel(r.message_ids[0])  # -> sms:cancelled
    [p] = parts_of(ALICE, "hello")
    ingest(store, p)
    fanned = store.webhooks.webhook_fanout(_targets(cfg), payload.render_event, gap_wait_s=0)
    assert fanned.events == 3  # online, cancelled, received (queueing writes no event)
    assert fanned.deliveries == 4  # cancelled to a.lan and to its callback_url
    assert store.webhooks.webhook_fanout(_targets(cfg), payload.render_event, gap_wait_s=0) == (0, 0)
    rows = store.webhooks.claim_webhook_deliveries(limit=10)
    got = sorted((r["event_type"], r["url"]) for r in rows)
    assert got == [("modem:online", "http://b.lan/h"), ("sms:cancelled", "http://a.lan/h"),
                   ("sms:cancelled", "http://cb.lan/x"), ("sms:received", "http://a.lan/h")]
    body = json.loads(next(r["body"] for r in rows if r["event_type"] == "sms:cancelled"))
    assert body["data"]["message_id"] == r.message_ids[0] and body["data"]["state"] == "cancelled"
    # Leased: not claimed twice, until this host releases what it did not settle.
    assert store.webhooks.claim_webhook_deliveries(limit=10) == []
    assert store.webhooks.release_webhook_leases() == 4
    assert len(store.webhooks.claim_webhook_deliveries(limit=10)) == 4
    first, second, *_ = rows
    assert store.webhooks.settle_webhook_delivery(first["id"], ok=True, status=200, error=None) == "delivered"
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
    assert store.webhooks.settle_webhook_delivery(second["id"], ok=False, status=503, error="HTTP 503",
                                         retry_at=later) == "pending"
    assert store.webhooks.wake_webhook_target(second["url"]) >= 1
    [again] = [r for r in store.webhooks.claim_webhook_deliveries(limit=10) if r["id"] == second["id"]]
    assert again["attempts"] == 1
    assert store.webhooks.settle_webhook_delivery(second["id"], ok=False, status=None, error="refused") == "failed"
    assert store.webhooks.webhook_counts()["failed"] == 1
    assert store.webhooks.retry_failed_webhooks() == 1


def test_fanout_waits_at_a_fresh_gap_in_event_ids(store: Any) -> None:
    """On PostgreSQL an event id taken by a transaction still open commits later: the
    cursor must not jump over it (until the gap is old enough to be a rollback)."""
    from gsmgw.store import tables as t

    cfg = WebhooksConfig(subscription=(WebhookSubscription("http://a.lan/h"),))
    store.events.add_event("modem:online", modem_id="sim1")
    store.webhooks.webhook_fanout(_targets(cfg), payload.render_event, gap_wait_s=0)
    last = store.events.list_events()[-1]["id"]
    now = dt.datetime.now(dt.UTC)
    fan = store.webhooks.webhook_fanout

    def fan_until(at: dt.datetime) -> int:
        """PostgreSQL: a gap is final once the transactions open when it was seen ended,
        other databases' on the shared server too: allow a few rounds."""
        for _ in range(1000):
            got = fan(_targets(cfg), payload.render_event, gap_wait_s=30, now=at).events
            if got or store.is_sqlite:
                return got
            time.sleep(0.01)
        return 0

    pg_open = None
    if not store.is_sqlite:  # a real transaction holds id last+1 (SQLite: one writer, simulated)
        pg_open = store.engine.connect()
        pg_open.begin()
        pg_open.execute(t.events.insert().values(id=last + 1, type="sim:storage-full", payload="{}", created_at=now))
    with store.engine.begin() as conn:  # id last+1 is "still in flight": skip it
        conn.execute(t.events.insert().values(id=last + 2, type="modem:offline", payload="{}", created_at=now))
    assert fan(_targets(cfg), payload.render_event, gap_wait_s=30, now=now).events == 0
    if pg_open is not None:
        assert fan(_targets(cfg), payload.render_event, gap_wait_s=30, now=now).events == 0
        pg_open.commit()
        pg_open.close()
    else:
        with store.engine.begin() as conn:
            conn.execute(t.events.insert().values(id=last + 1, type="sim:storage-full", payload="{}", created_at=now))
    assert fan_until(now) == 2
    types = [r["event_type"] for r in sorted(store.webhooks.claim_webhook_deliveries(limit=10), key=lambda r: r["event_id"])]
    assert types == ["modem:online", "sim:storage-full", "modem:offline"]
    # A gap that stays (a rolled-back insert) is passed once old enough.
    with store.engine.begin() as conn:
        conn.execute(t.events.insert().values(id=last + 5, type="balance:low", payload="{}", created_at=now))
    # (PostgreSQL: at once, no transaction that could fill it being open.)
    later = now + dt.timedelta(seconds=31)
    assert fan_until(now if pg_open is not None else later) == 1


def test_any_arrival_order_with_repeats_gives_one_complete_message(tmp_path: Any) -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from gsmgw.store import Store

    store = Store(f"sqlite:///{tmp_path / 'h.db'}")
    store.migrate()
    counter = iter(range(10_000))
    try:
        @settings(max_examples=40, deadline=None)
        @given(st.data(), st.sampled_from(["x" * 400, "😀ab" * 60, "€[]" * 120]), st.booleans())
        def check(data: Any, text: str, bits16: bool) -> None:
            sender = f"+4477009{next(counter):05d}"
            parts = parts_of(sender, text, concat_ref=0x1234 if bits16 else 0x12, concat_16bit=bits16)
            order = data.draw(st.permutations(parts))
            repeats = data.draw(st.lists(st.sampled_from(parts), max_size=4))
            arrivals = list(order)
            for r in repeats:  # a repeat lands anywhere, even after completion
                arrivals.insert(data.draw(st.integers(0, len(arrivals))), r)
            done = [m for p in arrivals if (m := ingest(store, p).message) is not None]
            assert len(done) == 1
            assert done[0].text == text and done[0].complete
            assert [r["text"] for r in store.inbound.list_inbound(sender=sender)] == [text]

        check()
    finally:
        store.close()
