"""Claim order and routing on the store (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gsmgw.config import RouteRule
from gsmgw.domain import MessageState
from gsmgw.pool.routing import Router
from gsmgw.store import NewMessage, PartResult, Store


def new(to: str = "+15551234567", **kw: object) -> NewMessage:
    return NewMessage(to_number=to, text="x", encoding="gsm7", parts_total=1, **kw)  # type: ignore[arg-type]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(priorities=st.lists(st.integers(min_value=-10, max_value=10), min_size=1, max_size=15))
def test_claims_follow_priority_then_age(store: Store, priorities: list[int]) -> None:
    with store.engine.begin() as conn:  # fresh queue per example
        from gsmgw.store import tables as t

        conn.execute(t.message_parts.delete())
        conn.execute(t.messages.delete())
    ids = [store.messages.enqueue([new(priority=p)]).message_ids[0] for p in priorities]
    claimed = []
    while (c := store.claims.claim_next("m1", lease_s=30)) is not None:
        claimed.append(c.id)
    expected = [i for _, _, i in sorted(zip([-p for p in priorities], range(len(ids)), ids, strict=True))]
    assert claimed == expected


def test_strict_route_only_goes_to_its_group(store: Store) -> None:
    mid = store.messages.enqueue([new("+447700900123", route_group="uk")]).message_ids[0]
    assert store.claims.claim_next("us1", lease_s=30, group="us") is None
    c = store.claims.claim_next("uk1", lease_s=30, group="uk")
    assert c is not None and c.id == mid


def test_soft_route_falls_back_after_its_time(store: Store) -> None:
    store.messages.enqueue([new("+447700900123", route_group="uk", route_fallback_s=30)])
    assert store.claims.claim_next("us1", lease_s=30, group="us") is None
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=31)
    assert store.claims.claim_next("us1", lease_s=30, group="us", now=later) is not None


def test_sticky_number_prefers_the_sim_it_used_last(store: Store) -> None:
    first = store.messages.enqueue([new()], sticky_s=3600).message_ids[0]
    c = store.claims.claim_next("simB", lease_s=30)
    assert c is not None
    store.claims.mark_parts_sending(first, [1], "simB")
    store.claims.settle_claim(first, [PartResult(1, MessageState.SENT, tp_mr=1)])
    second = store.messages.enqueue([new()], sticky_s=3600, sticky_fallback_s=60).message_ids[0]
    other = store.messages.enqueue([new("+15557654321")], sticky_s=3600).message_ids[0]
    got = store.claims.claim_next("simA", lease_s=30)
    assert got is not None and got.id == other  # simA skips the sticky one
    got = store.claims.claim_next("simB", lease_s=30)
    assert got is not None and got.id == second
    row = store.messages.get_message(second)
    assert row["preferred_sim"] == "simB"


def test_cancel_only_while_queued(store: Store) -> None:
    a = store.messages.enqueue([new()]).message_ids[0]
    assert store.messages.cancel(a) == (True, "cancelled")
    assert store.claims.claim_next("m1", lease_s=30) is None
    b = store.messages.enqueue([new()]).message_ids[0]
    store.claims.claim_next("m1", lease_s=30)
    assert store.messages.cancel(b) == (False, "sending")
    assert store.messages.cancel("nope") == (False, None)


def test_router_first_match_wins() -> None:
    r = Router((RouteRule(group="uk", prefix="+44", fallback_after_s=0),
                RouteRule(group="mobile", regex=r"\+1(555)\d+")))
    assert r.route("+447700900123").group == "uk" and r.route("+447700900123").fallback_after_s is None
    assert r.route("+15551234567").group == "mobile"
    assert r.route("+33612345678").group is None
