"""The intake service without HTTP: plain values in, a real store (SQLite, and
PostgreSQL where available) underneath."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

import pytest

from gsmgw.config import ApiConfig, Config, WebhooksConfig
from gsmgw.errors import AdmissionError, ValidationError
from gsmgw.intake import Caller, IntakeService, Recipient, SendRequest
from gsmgw.store import Store

NUMBER = "+15551234567"
OTHER = "+15557654321"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Seen:
    """An IntakeObserver that remembers."""

    def __init__(self) -> None:
        self.accepted = 0
        self.rejected: list[str] = []

    def on_accepted(self, n: int) -> None:
        self.accepted += n

    def on_rejected(self, reason: str) -> None:
        self.rejected.append(reason)


@dataclasses.dataclass
class Rig:
    store: Store
    intake: IntakeService
    cfg: list[Config]
    clock: Clock
    seen: Seen
    woken: list[int]

    async def caller(self, *scopes: str, **limits: int) -> tuple[Caller, str]:
        _, secret = await self.store.call(self.store.keys.create_api_key, "t", list(scopes or ("send",)), **limits)
        caller = await self.intake.authenticate(secret)
        assert caller is not None
        return caller, secret

    async def row(self, message_id: str) -> dict[str, Any]:
        row = await self.store.call(self.store.messages.get_message, message_id)
        assert row is not None
        return row

    async def depth(self) -> int:
        return int(await self.store.call(self.store.messages.queue_depth))


def make_rig(store: Store, cfg: Config | None = None, **kw: Any) -> Rig:
    cfgs = [cfg or Config(webhooks=WebhooksConfig(allowed_hosts=("hooks.lan",)))]
    clock, seen, woken = Clock(), Seen(), []
    intake = IntakeService(store, lambda: cfgs[0], notify_work=lambda: woken.append(1), clock=clock,
                           host="test-host", **kw)
    intake.add_observer(seen)
    return Rig(store, intake, cfgs, clock, seen, woken)


@pytest.fixture
def rig(store: Store) -> Rig:
    return make_rig(store, local_modems=lambda: [{"id": "sim1"}],
                    route=lambda n: ("uk", 30.0) if n.startswith("+44") else (None, None))


async def test_submit_normalises_commits_and_says_what_it_queued(rig: Rig) -> None:
    caller, _ = await rig.caller()
    res = await rig.intake.submit(caller, SendRequest(to=["+1 (555) 123-4567", "+44 7700 900123"], text="hi",
                                                      priority="otp", flash=True))
    assert [m.to for m in res.messages] == [NUMBER, "+447700900123"]
    assert [(m.encoding, m.parts) for m in res.messages] == [("gsm7", 1), ("gsm7", 1)]
    assert not res.replayed and len(set(res.message_ids)) == 2
    first, second = [await rig.row(m) for m in res.message_ids]
    assert first["state"] == "queued" and first["priority"] == 9 and first["flash"] is True
    assert first["api_key_id"] == caller.id and first["door"] == "api" and first["door_data"] is None
    assert first["route_group"] is None and second["route_group"] == "uk"  # the routing rules
    assert rig.woken and rig.seen.accepted == 2 and await rig.depth() == 2


async def test_door_and_door_data_are_stored_with_each_message(rig: Rig) -> None:
    caller, _ = await rig.caller()
    res = await rig.intake.submit(caller, SendRequest(to=[NUMBER, OTHER], text="hi", door="smpp",
                                                      door_data={"system_id": "esme1", "seq": 7}))
    for mid in res.message_ids:
        row = await rig.row(mid)
        assert row["door"] == "smpp" and json.loads(row["door_data"]) == {"system_id": "esme1", "seq": 7}


async def test_template_with_per_recipient_variables(rig: Rig) -> None:
    caller, _ = await rig.caller()
    res = await rig.intake.submit(caller, SendRequest(
        to=[Recipient(NUMBER, {"name": "Ann"}), Recipient(OTHER, {"name": "Zoë", "code": 9})],
        template="Hi {name}: {code} {{x}}", variables={"code": 1234}))
    texts = [(await rig.row(m))["text"] for m in res.message_ids]
    assert texts == ["Hi Ann: 1234 {x}", "Hi Zoë: 9 {x}"]


@pytest.mark.parametrize(("request_kw", "code", "field"), [
    ({"to": "+1555"}, "invalid_number", "to"),
    ({"to": 15551234567}, "invalid_number", "to"),
    ({"to": [NUMBER + "\r\nAT+CMGD=1,4"]}, "invalid_number", "to"),
    ({"to": []}, "invalid_number", "to"),
    ({"to": [Recipient(NUMBER, {"a": "b"})]}, "invalid_number", "to"),  # variables without a template
    ({"text": None}, "invalid_text", "text"),
    ({"text": ""}, "invalid_text", "text"),
    ({"text": "x" * 5000}, "text_too_long", "text"),
    ({"template": "x"}, "invalid_text", "text"),  # both text and template
    ({"text": None, "template": "Hi {name}"}, "missing_variable", "template"),
    ({"text": None, "template": "{a}", "variables": {"a": {"nested": 1}}}, "invalid_variables", "variables"),
    ({"text": None, "template": "{a}", "to": [Recipient(NUMBER, {"a": True})]}, "invalid_variables",
     "to[0].variables"),
    ({"text": None, "template": "{a}", "to": [Recipient("nope")]}, "invalid_number", "to[0].to"),
    ({"priority": "urgent!"}, "invalid_field", "priority"),
    ({"priority": True}, "invalid_field", "priority"),
    ({"priority": 11}, "invalid_field", "priority"),
    ({"flash": "yes"}, "invalid_field", "flash"),
    ({"delivery_report": 1}, "invalid_field", "delivery_report"),
    ({"send_at": "tomorrow"}, "invalid_time", "send_at"),
    ({"send_at": "2030-01-01T00:00:00"}, "invalid_time", "send_at"),
    ({"send_at": dt.datetime(2030, 1, 1)}, "invalid_time", "send_at"),  # naive
    ({"valid_until": "2001-01-01T00:00:00Z"}, "invalid_time", "valid_until"),
    ({"ttl_s": -5}, "invalid_field", "ttl"),
    ({"ttl_s": 31 * 86400}, "invalid_field", "ttl"),
    ({"sim": "nope"}, "unknown_sim", "sim"),
    ({"callback_url": "http://evil.example/x"}, "callback_not_allowed", "callback_url"),
    ({"callback_url": "ftp://hooks.lan/x"}, "invalid_callback", "callback_url"),
    ({"idempotency_key": "x" * 201}, "invalid_field", "idempotency_key"),
])
async def test_bad_requests_get_a_stable_code_and_field_and_queue_nothing(rig: Rig, request_kw: dict[str, Any],
                                                                         code: str, field: str) -> None:
    caller, _ = await rig.caller()
    req = SendRequest(**{"to": NUMBER, "text": "hi", **request_kw})
    with pytest.raises(ValidationError) as err:
        await rig.intake.submit(caller, req)
    assert (err.value.code, err.value.field) == (code, field) and err.value.message
    assert await rig.depth() == 0 and rig.seen.accepted == 0


async def test_times_ttl_and_sim(rig: Rig) -> None:
    caller, _ = await rig.caller()
    await rig.store.call(rig.store.modems.upsert_modem, "far1", host="other-host", state="ready")
    send_at = dt.datetime(2099, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    res = await rig.intake.submit(caller, SendRequest(to=NUMBER, text="hi", send_at=send_at, ttl_s=3600,
                                                      sim="sim1"))
    row = await rig.row(res.message_ids[0])
    assert row["send_at"].replace(tzinfo=dt.UTC) == dt.datetime(2099, 1, 1, 10, tzinfo=dt.UTC)
    assert row["valid_until"].replace(tzinfo=dt.UTC) == dt.datetime(2099, 1, 1, 11, tzinfo=dt.UTC)
    assert row["sim_requested"] == "sim1"
    # A modem another host of the shared store reported may be asked for too.
    res = await rig.intake.submit(caller, SendRequest(to=NUMBER, text="hi", sim="far1",
                                                      valid_until="2099-02-01T00:00:00Z"))
    assert (await rig.row(res.message_ids[0]))["sim_requested"] == "far1"


async def test_opted_out_numbers_get_only_transactional_messages(rig: Rig) -> None:
    caller, _ = await rig.caller()
    await rig.store.call(rig.store.optouts.add_optout, OTHER, source="api")
    with pytest.raises(ValidationError) as err:
        await rig.intake.submit(caller, SendRequest(to=[NUMBER, OTHER], text="promo"))
    assert err.value.code == "opted_out" and OTHER in err.value.message and await rig.depth() == 0
    assert await rig.intake.opted_out([NUMBER, OTHER]) == {OTHER}
    res = await rig.intake.submit(caller, SendRequest(to=[NUMBER, OTHER], text="your code", transactional=True))
    assert len(res.messages) == 2 and (await rig.row(res.message_ids[1]))["transactional"] is True


async def test_daily_quota_counts_messages_and_is_rebuilt_from_the_store(rig: Rig) -> None:
    caller, _ = await rig.caller(daily_quota=3)
    await rig.intake.submit(caller, SendRequest(to=[NUMBER, OTHER], text="x"))
    with pytest.raises(AdmissionError) as err:
        await rig.intake.submit(caller, SendRequest(to=[NUMBER, OTHER], text="x"))
    assert err.value.code == "quota_exceeded" and 0 < err.value.retry_after_s <= 86400
    assert rig.seen.rejected == ["quota"]
    await rig.intake.submit(caller, SendRequest(to=NUMBER, text="x"))
    # A new service (a restart) counts today's messages from the store.
    fresh = make_rig(rig.store)
    with pytest.raises(AdmissionError):
        await fresh.intake.submit(caller, SendRequest(to=NUMBER, text="x"))
    assert await rig.depth() == 3


async def test_a_full_queue_refuses_more(store: Store) -> None:
    rig = make_rig(store, Config(api=ApiConfig(max_queue_depth=2)))
    caller, _ = await rig.caller()
    await rig.intake.submit(caller, SendRequest(to=[NUMBER, OTHER], text="x"))
    with pytest.raises(AdmissionError) as err:
        await rig.intake.submit(caller, SendRequest(to=NUMBER, text="x"))
    assert err.value.code == "queue_full" and err.value.retry_after_s > 0
    assert rig.seen.rejected == ["queue_full"] and await rig.depth() == 2


async def test_request_rate_is_a_token_bucket_per_caller(rig: Rig) -> None:
    slow, _ = await rig.caller(rate_per_s=2)
    free, _ = await rig.caller()
    assert [rig.intake.take_request(slow) for _ in range(2)] == [0.0, 0.0]
    assert rig.intake.take_request(slow) == pytest.approx(0.5)
    assert rig.seen.rejected == ["rate"]
    assert all(rig.intake.take_request(free) == 0.0 for _ in range(100))  # no rate: unlimited
    rig.clock.now += 0.5
    assert rig.intake.take_request(slow) == 0.0


async def test_authenticate_caches_keys_for_a_few_seconds(rig: Rig) -> None:
    caller, secret = await rig.caller("read", "send")
    assert caller.scopes == {"read", "send"} and caller.may("send") and not caller.may("admin")
    for bad in (None, "", "x" * 201, "gsk_ünïcode", "gsk_\x00"):
        assert await rig.intake.authenticate(bad) is None
    assert await rig.intake.authenticate(secret + "x") is None
    await rig.store.call(rig.store.keys.revoke_api_key, caller.id)
    assert await rig.intake.authenticate(secret) == caller  # still cached
    rig.clock.now += rig.intake.key_cache.ttl_s + 0.1
    assert await rig.intake.authenticate(secret) is None


async def test_idempotency_key_never_queues_twice(rig: Rig) -> None:
    caller, _ = await rig.caller()
    req = SendRequest(to=[NUMBER, OTHER], text="a", idempotency_key="order-42")
    first = await rig.intake.submit(caller, req)
    again = await rig.intake.submit(caller, req)
    assert again.replayed and again.message_ids == first.message_ids
    assert again.batch_id == first.batch_id and await rig.depth() == 2 and rig.seen.accepted == 2
    # Each id still goes with its own recipient (ids are in recipient order).
    many = SendRequest(to=[f"+1555123{i:04d}" for i in range(50)], text="b", idempotency_key="bulk-1")
    first = await rig.intake.submit(caller, many)
    again = await rig.intake.submit(caller, many)
    assert again.replayed and again.messages == first.messages
    for m in again.messages:
        assert (await rig.row(m.id))["to_number"] == m.to
    # Keys are per caller: another caller's same key is another request.
    other, _ = await rig.caller()
    assert not (await rig.intake.submit(other, req)).replayed


async def test_cancel_is_for_the_owner_or_an_admin(rig: Rig) -> None:
    owner, _ = await rig.caller()
    stranger, _ = await rig.caller("send")
    admin, _ = await rig.caller("admin")
    reader, _ = await rig.caller("read")
    ids = (await rig.intake.submit(owner, SendRequest(to=[NUMBER, OTHER], text="x",
                                                      send_at="2099-01-01T00:00:00Z"))).message_ids
    for who in (stranger, reader):
        res = await rig.intake.cancel(who, ids[0])
        assert not res and res.state is None  # as if there were no such message
    res = await rig.intake.cancel(owner, ids[0])
    assert res and res.state == "cancelled"
    res = await rig.intake.cancel(owner, ids[0])
    assert not res and res.state == "cancelled"
    assert await rig.intake.cancel(admin, ids[1])
    assert (await rig.intake.cancel(owner, "nope")).state is None


async def test_preview_and_number(rig: Rig) -> None:
    pv = rig.intake.preview("Привет")
    assert (str(pv.encoding), pv.parts) == ("ucs2", 1)
    assert rig.intake.preview("a" * 161).parts == 2
    with pytest.raises(ValidationError) as err:
        rig.intake.preview("")
    assert err.value.code == "invalid_text"
    assert rig.intake.number("(555) 123-4567") == NUMBER  # national, in api.default_region (US)
    with pytest.raises(ValidationError) as err:
        rig.intake.number("12", field="from")
    assert (err.value.code, err.value.field) == ("invalid_number", "from")


async def test_a_reloaded_config_applies_at_once(rig: Rig) -> None:
    caller, _ = await rig.caller()
    req = SendRequest(to=NUMBER, text="x", callback_url="http://new.lan/cb")
    with pytest.raises(ValidationError):
        await rig.intake.submit(caller, req)
    rig.cfg[0] = Config(webhooks=WebhooksConfig(allowed_hosts=("new.lan",)))
    res = await rig.intake.submit(caller, req)
    assert (await rig.row(res.message_ids[0]))["callback_url"] == "http://new.lan/cb"
