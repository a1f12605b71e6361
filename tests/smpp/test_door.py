"""Long messages held in the store, deliver_sm from the durable outbox, rendering of events."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from types import SimpleNamespace

from gsmgw.config import SmppConfig, SmppRoute
from gsmgw.errors import SmppError
from gsmgw.smpp import SmppServer
from gsmgw.smpp.constants import Command, MessageStateCode, Status, Tag
from gsmgw.smpp.message import parse_receipt
from gsmgw.smpp.outbox import Renderer, receipt_params
from gsmgw.smpp.pdu import Pdu
from gsmgw.store import Store
from gsmgw.store.smpp_repo import SmppDelivery
from tests.smpp.conftest import PASSWORD, with_cfg
from tests.smpp.helpers import FakePort, RawEsme, bind_params, submit_params


async def _bound(server: SmppServer, command: Command = Command.BIND_TRANSCEIVER) -> RawEsme:
    esme = await RawEsme.connect(server.port_number)
    r = await esme.call(Pdu(command, 0, 0, bind_params("esme", PASSWORD)))
    assert r.command_status == Status.ROK
    return esme


def _part(ref: int, total: int, seq: int, text: bytes, **over: object) -> Pdu:
    return Pdu(Command.SUBMIT_SM, 0, 0, submit_params(text=bytes((5, 0, 3, ref, total, seq)) + text,
                                                        esm_class=0x40, **over))


async def test_parts_are_held_then_sent_as_one(server: SmppServer, port: FakePort, sqlite_store: Store) -> None:
    esme = await _bound(server)
    try:
        ids = []
        for seq, chunk in ((2, b" brown fox"), (1, b"The quick"), (3, b" jumps")):
            r = await esme.call(_part(7, 3, seq, chunk))
            assert r.command_status == Status.ROK
            ids.append(r.get("message_id"))
            if seq != 3:
                assert port.submissions == []  # held, not sent
        # A part sent again keeps the id it was given (its first response may have been lost).
        assert len(set(ids)) == 3
        (_sid, sub), = port.submissions
        assert sub.text == "The quick brown fox jumps"
        assert sub.door_data["ids"] == [ids[1], ids[0], ids[2]]  # in part order
        assert sub.idempotency_key and sub.idempotency_key.startswith("smpp-parts:")
        assert sqlite_store.smpp.stale_groups(older_than=dt.datetime.now(dt.UTC) + dt.timedelta(days=1)) == []
    finally:
        await esme.close()


async def test_resent_part_keeps_its_id(server: SmppServer, port: FakePort) -> None:
    esme = await _bound(server)
    try:
        a = await esme.call(_part(9, 2, 1, b"one"))
        b = await esme.call(_part(9, 2, 1, b"one"))
        assert a.get("message_id") == b.get("message_id")
        assert port.submissions == []
    finally:
        await esme.close()


async def test_throttled_last_part_can_be_sent_again(server: SmppServer, port: FakePort) -> None:
    esme = await _bound(server)
    try:
        assert (await esme.call(_part(3, 2, 1, b"first "))).command_status == Status.ROK
        port.refuse = SmppError("rate", status=Status.RTHROTTLED)
        assert (await esme.call(_part(3, 2, 2, b"second"))).command_status == Status.RTHROTTLED
        port.refuse = None
        assert (await esme.call(_part(3, 2, 2, b"second"))).command_status == Status.ROK
        assert [s.text for _id, s in port.submissions] == ["first second"]
    finally:
        await esme.close()


async def test_refused_whole_rejects_accepted_parts(server: SmppServer, port: FakePort, sqlite_store: Store) -> None:
    esme = await _bound(server)
    try:
        first = await esme.call(_part(4, 2, 1, b"first "))
        port.refuse = SmppError("opted out", status=Status.RSUBMITFAIL)
        assert (await esme.call(_part(4, 2, 2, b"second"))).command_status == Status.RSUBMITFAIL
        # The first part had ESME_ROK: it gets a REJECTD receipt.
        dlv = await esme.read()
        assert dlv.command is Command.DELIVER_SM and dlv.get("esm_class") == 0x04
        assert dlv.tlv_cstr(Tag.RECEIPTED_MESSAGE_ID) == first.get("message_id")
        assert dlv.tlv_int(Tag.MESSAGE_STATE) == MessageStateCode.REJECTED
        assert parse_receipt(dlv.get("short_message").decode())["stat"] == "REJECTD"
        esme.send(dlv.response(message_id=""))
    finally:
        await esme.close()


async def test_missing_parts_time_out_into_one_message(server: SmppServer, port: FakePort,
                                                        cfg_box: dict[str, SmppConfig]) -> None:
    esme = await _bound(server)
    try:
        await esme.call(_part(5, 3, 1, b"only "))
        await esme.call(_part(5, 3, 3, b"two"))
        with_cfg(cfg_box, reassembly_timeout_s=0.0)
        assert await server.flush_stale_parts() == 1
        assert [s.text for _id, s in port.submissions] == ["only two"]
        assert await server.flush_stale_parts() == 0
    finally:
        await esme.close()


async def test_separate_policy_sends_each_part(server: SmppServer, port: FakePort,
                                               cfg_box: dict[str, SmppConfig]) -> None:
    with_cfg(cfg_box, concat_policy="separate")
    esme = await _bound(server)
    try:
        for seq in (1, 2):
            assert (await esme.call(_part(6, 2, seq, b"part"))).command_status == Status.ROK
        assert len(port.submissions) == 2
    finally:
        await esme.close()


async def test_submit_multi(server: SmppServer, port: FakePort) -> None:
    from gsmgw.smpp.pdu import Destination

    esme = await _bound(server)
    try:
        params = submit_params()
        for k in ("dest_addr_ton", "dest_addr_npi", "destination_addr"):
            del params[k]
        params["dest_address"] = [Destination("447700900123", 1, 1), Destination("447700900124", 1, 1)]
        r = await esme.call(Pdu(Command.SUBMIT_MULTI, 0, 0, params))
        assert r.command is Command.SUBMIT_MULTI_RESP and r.command_status == Status.ROK
        assert r.get("message_id") == "batch-msg0001" and r.get("unsuccess_sme") == []
        assert port.submissions[0][1].to == ("+447700900123", "+447700900124")
    finally:
        await esme.close()


async def test_cancel_sm(server: SmppServer, port: FakePort) -> None:
    esme = await _bound(server)
    try:
        r = await esme.call(Pdu(Command.CANCEL_SM, 0, 0, {"message_id": "msg0007", "source_addr": "Shop",
                                                         "destination_addr": "447700900123"}))
        assert (r.command, r.command_status) == (Command.CANCEL_SM_RESP, Status.ROK)
        r = await esme.call(Pdu(Command.CANCEL_SM, 0, 0, {"message_id": "nope"}))
        assert r.command_status == Status.RCANCELFAIL
        assert port.cancelled == ["msg0007", "nope"]
    finally:
        await esme.close()


# --- deliver_sm from the outbox --------------------------------------------------------------


def _receipt(ref: str) -> SmppDelivery:
    now = dt.datetime.now(dt.UTC)
    return SmppDelivery("esme", "receipt", ref, receipt_params(
        message_id=ref, state=MessageStateCode.DELIVERED, handset=("447700900123", 1, 1), esme=("Shop", 5, 0),
        submitted_at=now, done_at=now, error_code=None, text="hello", default_alphabet="gsm7"))


async def _wait_state(store: Store, state: str, n: int, timeout_s: float = 5.0) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout_s
    while True:
        rows = await store.call(store.smpp.list_deliveries, state=state)
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.02)


async def test_deliveries_wait_for_a_receiver_and_settle_on_resp(server: SmppServer, sqlite_store: Store) -> None:
    await sqlite_store.call(sqlite_store.smpp.add_deliveries, [_receipt("r1"), _receipt("r2")])
    tx = await _bound(server, Command.BIND_TRANSMITTER)  # a transmitter gets nothing
    await asyncio.sleep(0.2)
    assert len(await sqlite_store.call(sqlite_store.smpp.list_deliveries, state="pending")) == 2
    rx = await _bound(server, Command.BIND_RECEIVER)
    try:
        got = []
        for _ in range(2):
            d = await rx.read()
            assert d.command is Command.DELIVER_SM
            got.append(d.tlv_cstr(Tag.RECEIPTED_MESSAGE_ID))
            rx.send(d.response(message_id=""))
        assert sorted(got) == ["r1", "r2"]
        assert len(await _wait_state(sqlite_store, "delivered", 2)) == 2
    finally:
        await rx.close()
        await tx.close()


async def test_temporary_refusal_and_lost_receiver_retry(server: SmppServer, sqlite_store: Store) -> None:
    await sqlite_store.call(sqlite_store.smpp.add_deliveries, [_receipt("r1")])
    rx = await _bound(server, Command.BIND_RECEIVER)
    try:
        d = await rx.read()
        rx.send(d.response(Status.RX_T_APPN))  # "later"
        d = await rx.read()  # after the backoff
        assert d.tlv_cstr(Tag.RECEIPTED_MESSAGE_ID) == "r1"
        await rx.close()  # gone without answering
    finally:
        await rx.close()
    rx = await _bound(server, Command.BIND_RECEIVER)
    try:
        d = await rx.read()
        assert d.tlv_cstr(Tag.RECEIPTED_MESSAGE_ID) == "r1"
        rx.send(d.response())
        (row,) = await _wait_state(sqlite_store, "delivered", 1)
        assert row["attempts"] >= 2
    finally:
        await rx.close()


async def test_permanent_refusal_gives_up(server: SmppServer, sqlite_store: Store) -> None:
    await sqlite_store.call(sqlite_store.smpp.add_deliveries, [_receipt("r1")])
    rx = await _bound(server, Command.BIND_RECEIVER)
    try:
        d = await rx.read()
        rx.send(d.response(Status.RX_P_APPN))
        assert len(await _wait_state(sqlite_store, "failed", 1)) == 1
    finally:
        await rx.close()


# --- rendering events -------------------------------------------------------------------------


def _msg(**over: object) -> dict[str, object]:
    now = dt.datetime(2026, 1, 31, 12, 0, tzinfo=dt.UTC)
    m: dict[str, object] = {
        "id": "m1", "batch_id": "m1", "to_number": "+447700900123", "text": "Your code is 1234",
        "created_at": now, "updated_at": now + dt.timedelta(minutes=1),
        "delivered_at": now + dt.timedelta(minutes=1), "error_code": None, "door": "smpp",
        "door_data": json.dumps({"system_id": "esme", "rd": 1, "src": ["Shop", 5, 0],
                                 "dst": ["447700900123", 1, 1]})}
    m.update(over)
    return m


def _event(type_: str, **over: object) -> SimpleNamespace:
    ev = {"id": 1, "type": type_, "message_id": "m1", "modem_id": "sim1", "payload": "{}",
          "created_at": dt.datetime(2026, 1, 31, 12, 1, tzinfo=dt.UTC)}
    ev.update(over)
    return SimpleNamespace(**ev)


def test_render_receipt() -> None:
    render = Renderer(SmppConfig())
    (d,) = render(_event("sms:delivered"), _msg(), {})
    assert (d.system_id, d.kind, d.ref) == ("esme", "receipt", "m1")
    assert (d.pdu["source_addr"], d.pdu["destination_addr"], d.pdu["esm_class"]) == ("447700900123", "Shop", 4)
    text = bytes.fromhex(d.pdu["short_message"]).decode()
    assert text == ("id:m1 sub:001 dlvrd:001 submit date:2601311200 done date:2601311201 stat:DELIVRD "
                    "err:000 text:Your code is 1234")
    assert d.pdu["tlvs"][str(int(Tag.MESSAGE_STATE))] == "02"


def test_render_receipt_choices() -> None:
    render = Renderer(SmppConfig())
    on_failure = json.dumps({"system_id": "esme", "rd": 2, "src": ["Shop", 5, 0], "dst": ["1", 1, 1]})
    assert render(_event("sms:delivered"), _msg(door_data=on_failure), {}) == []
    (d,) = render(_event("sms:failed"), _msg(door_data=on_failure, error_code="report:0x45"), {})
    assert "stat:UNDELIV err:069" in bytes.fromhex(d.pdu["short_message"]).decode()
    assert render(_event("sms:sent"), _msg(), {}) == []  # no intermediate asked for
    assert render(_event("sms:delivered"), _msg(door="api"), {}) == []  # not an SMPP message
    parts = json.dumps({"system_id": "esme", "rd": 1, "ids": ["p1", "p2"], "src": ["S", 5, 0], "dst": ["1", 1, 1]})
    assert [d.ref for d in render(_event("sms:expired"), _msg(door_data=parts), {})] == ["p1", "p2"]


def test_render_inbound_routes() -> None:
    cfg = SmppConfig(route=(SmppRoute(system_id="other", sim="sim9"),
                            SmppRoute(system_id="esme", sender_prefix="+44")))
    render = Renderer(cfg)
    payload = json.dumps({"id": "in1", "from": "+447700900123", "sim": "sim1", "text": "Привет"})
    (d,) = render(_event("sms:received", message_id=None, payload=payload), None, {"sim1": "+15550000001"})
    assert (d.system_id, d.kind, d.ref) == ("esme", "mo", "in1")
    assert (d.pdu["source_addr"], d.pdu["destination_addr"], d.pdu["data_coding"]) == (
        "447700900123", "15550000001", 8)
    payload = json.dumps({"id": "in2", "from": "+15551234567", "sim": "sim1", "text": "x"})
    assert render(_event("sms:received", message_id=None, payload=payload), None, {}) == []
    long_text = json.dumps({"id": "in3", "from": "+447700900123", "sim": "sim1", "text": "y" * 300})
    (d,) = render(_event("sms:received", message_id=None, payload=long_text), None, {})
    assert d.pdu["short_message"] == "" and d.pdu["tlvs"][str(int(Tag.MESSAGE_PAYLOAD))] == ("79" * 300)
    assert d.pdu["destination_addr"] == "sim1"


async def test_characters_split_between_parts_survive(server: SmppServer, port: FakePort) -> None:
    """smpplib splits encoded octets blindly: a GSM escape or a surrogate pair can straddle parts."""
    esme = await _bound(server)
    try:
        # "a€b": € is ESC 0x65 in GSM 03.38; the split falls between ESC and 0x65.
        assert (await esme.call(_part(11, 2, 1, b"a\x1b"))).command_status == Status.ROK
        assert (await esme.call(_part(11, 2, 2, b"\x65b"))).command_status == Status.ROK
        wave = "👋".encode("utf-16-be")  # a surrogate pair, 4 octets
        assert (await esme.call(_part(12, 2, 1, b"\x00x" + wave[:2], data_coding=8))).command_status == Status.ROK
        assert (await esme.call(_part(12, 2, 2, wave[2:] + b"\x00y", data_coding=8))).command_status == Status.ROK
        assert [s.text for _id, s in port.submissions] == ["a€b", "x👋y"]
    finally:
        await esme.close()


def test_render_submit_multi_receipt_carries_the_batch_id() -> None:
    multi = json.dumps({"system_id": "esme", "rd": 1, "multi": True, "src": ["Shop", 5, 0], "dst": ["", 0, 0]})
    (d,) = Renderer(SmppConfig())(_event("message:delivered"), _msg(door_data=multi, batch_id="b9",
                                                                      to_number="+447700900777"), {})
    assert d.ref == "b9" and d.pdu["source_addr"] == "447700900777" and d.pdu["source_addr_ton"] == 1
