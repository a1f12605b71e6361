"""The same rules as the HTTP API, mapped to SMPP statuses (a gateway without modems)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gsmgw.config import ApiConfig, SmppConfig
from gsmgw.daemon import Gateway
from gsmgw.smpp.accounts import hash_password
from gsmgw.smpp.constants import Command, Status, Tag
from gsmgw.smpp.pdu import Pdu
from tests.helpers import make_config
from tests.smpp.helpers import RawEsme, bind_params, submit_params


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[Gateway]:
    cfg = make_config(tmp_path, [])
    cfg = dataclasses.replace(cfg, api=ApiConfig(listen="127.0.0.1:0", max_queue_depth=3),
                              smpp=SmppConfig(listen="127.0.0.1:0"))
    g = Gateway(cfg, host="test-host")
    await g.start()
    try:
        yield g
    finally:
        await g.stop()


async def _esme(gw: Gateway, system_id: str, **limits: int) -> RawEsme:
    await gw.store.call(gw.store.smpp.create_account, system_id, hash_password("pw"), ["send"], **limits)
    esme = await RawEsme.connect(gw.smpp.port_number)
    assert (await esme.call(Pdu(Command.BIND_TRANSMITTER, 0, 0, bind_params(system_id, "pw")))).command_status == 0
    return esme


async def _status(esme: RawEsme, **params: object) -> int:
    return (await esme.call(Pdu(Command.SUBMIT_SM, 0, 0, submit_params(**params)))).command_status


async def test_validation_and_admission_statuses(gw: Gateway) -> None:
    esme = await _esme(gw, "esme")
    try:
        assert await _status(esme, to="123") == Status.RINVDSTADR  # not a possible number
        too_long = Pdu(Command.SUBMIT_SM, 0, 0, submit_params(text=b""), {Tag.MESSAGE_PAYLOAD: b"x" * 153 * 11})
        assert (await esme.call(too_long)).command_status == Status.RINVMSGLEN  # over max_parts (10)
        await gw.store.call(gw.store.optouts.add_optout, "+447700900111")
        assert await _status(esme, to="447700900111") == Status.RSUBMITFAIL  # opted out
        assert await _status(esme, to="447700900123") == Status.ROK
        # A national number in [api] default_region (US) with ton 0.
        assert await _status(esme, to="2025550123", dest_addr_ton=0, dest_addr_npi=1) == Status.ROK
        assert await _status(esme, to="447700900124") == Status.ROK
        assert await _status(esme, to="447700900125") == Status.RMSGQFUL  # max_queue_depth 3
    finally:
        await esme.close()
    rows = {r["to_number"]: r for r in await gw.store.call(gw.store.messages.list_messages)}
    assert set(rows) == {"+447700900123", "+12025550123", "+447700900124"}
    assert rows["+447700900123"]["door"] == "smpp"


async def test_rate_and_quota(gw: Gateway) -> None:
    esme = await _esme(gw, "slow", rate_per_s=1, daily_quota=1)
    try:
        assert await _status(esme) == Status.ROK
        assert await _status(esme) == Status.RTHROTTLED  # 1 per second
    finally:
        await esme.close()
    esme = await _esme(gw, "quota", daily_quota=1)
    try:
        assert await _status(esme) == Status.ROK
        assert await _status(esme) == Status.RMSGQFUL  # the day's quota is used up
    finally:
        await esme.close()


async def test_cancel_only_own_messages(gw: Gateway) -> None:
    a = await _esme(gw, "a")
    b = await _esme(gw, "b")
    try:
        mid = (await a.call(Pdu(Command.SUBMIT_SM, 0, 0, submit_params(schedule_delivery_time="000001000000000R")))
               ).get("message_id")
        r = await b.call(Pdu(Command.CANCEL_SM, 0, 0, {"message_id": mid}))
        assert r.command_status == Status.RCANCELFAIL
        r = await a.call(Pdu(Command.CANCEL_SM, 0, 0, {"message_id": mid}))
        assert r.command_status == Status.ROK
        assert (await gw.store.call(gw.store.messages.get_message, mid))["state"] == "cancelled"  # type: ignore[index]
    finally:
        await a.close()
        await b.close()
