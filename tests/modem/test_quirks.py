"""The driver against modules with real quirks (issue 16), over a real pty.

Each test would fail on the driver before issue 16: the Wavecom module never became
ready (AT+CPIN? timed out, recovery escalated forever), the SIM800 was rebooted with
AT+CFUN while it was still printing its boot URCs.
"""

from __future__ import annotations

import dataclasses

import pytest

from gsmgw.domain import ModemState, SendOutcomeKind
from gsmgw.emulator import PERSONALITIES, Behaviour
from gsmgw.emulator.personality import with_quirks
from gsmgw.sms import decode_pdu
from tests.modem.conftest import submit_parts, wait_for

pytestmark = pytest.mark.timeout(20)


async def test_wavecom_cpin_without_ok_becomes_ready(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory("wavecom_fastrack")
    m = rig.modem
    assert m.state is ModemState.READY and m.attempts == 0
    assert m.quirks.family == "wavecom"
    assert b"AT+CFUN" not in rig.written()
    assert (m.identity.manufacturer, m.identity.model) == ("WAVECOM MODEM", "MULTIBAND  900E  1800")
    assert m.identity.imei == rig.em.imei  # the leading blank is not part of it
    outcomes = await m.send_pdus(submit_parts("+15550000002", "hello from a Wavecom"))
    assert [o.kind for o in outcomes] == [SendOutcomeKind.OK]


async def test_sim800_waits_for_sms_ready_instead_of_rebooting(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory("simcom_sim800", Behaviour(sms_ready_delay_s=1.0), sim_ready_timeout_s=5.0)
    m = rig.modem
    assert m.state is ModemState.READY and m.attempts == 0
    assert m.features.sms_ready_wait_s >= 0.5
    assert b"AT+CFUN" not in rig.written()
    assert [s for s in rig.states() if s in ("disconnected", "failed")] == []
    outcomes = await m.send_pdus(submit_parts())
    assert [o.kind for o in outcomes] == [SendOutcomeKind.OK]


async def test_sms_service_that_never_comes_is_escalated_after_the_wait(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory("simcom_sim800", Behaviour(sms_ready_delay_s=60.0), wait_ready=False,
                            sim_ready_timeout_s=0.5)
    await wait_for(lambda: b"AT+CFUN=0" in rig.written(), timeout_s=8.0)
    assert "SMS service not ready" in rig.modem.last_error
    assert rig.modem.state is not ModemState.READY
    # Recovery escalated only after waiting had failed: the SMS set-up was retried first.
    before_escalation = rig.written().split(b"AT+CFUN")[0]
    assert before_escalation.count(b"AT+CMGF=0") >= 2


async def test_huawei_storm_and_command_not_support(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory("huawei_e1550")
    m = rig.modem
    assert m.state is ModemState.READY and m.attempts == 0
    assert b"COMMAND NOT SUPPORT" in b"".join(b for _, d, b in rig.trace if d == "rx")
    parts = submit_parts("+15550000002", "storm " * 40)
    outcomes = await m.send_pdus(parts)
    assert [o.kind for o in outcomes] == [SendOutcomeKind.OK] * len(parts)
    assert [o.tp_mr for o in outcomes] == [s.tp_mr for s in rig.em.sent[-len(parts):]]
    assert (await m.ussd("*100#")).startswith("Your balance")


async def test_crcrlf_lower_hex_and_padded_identification(rig_factory, network) -> None:  # type: ignore[no-untyped-def]
    quirky = with_quirks(PERSONALITIES["quectel_ec25"], ["crcrlf", "lower-hex", "ident-spaces"])
    PERSONALITIES[quirky.key] = quirky
    try:
        rig = await rig_factory(quirky.key)
    finally:
        del PERSONALITIES[quirky.key]
    m = rig.modem
    assert m.state is ModemState.READY and m.quirks.family == "quectel"
    assert (m.identity.manufacturer, m.identity.model, m.identity.iccid) == ("Quectel", "EC25", rig.em.iccid)
    rig.em.inject_sms("+15559990001", "lower case hex")
    await wait_for(lambda: any(type(e).__name__ == "SmsIndication" for e in rig.events))
    [stored] = await m.list_sms(4)
    assert stored.pdu_hex == stored.pdu_hex.upper()
    assert decode_pdu(stored.pdu_hex, tpdu_length=stored.tpdu_length).text == "lower case hex"  # type: ignore[union-attr]


async def test_transient_321_reaches_the_caller_as_an_empty_read(rig_factory) -> None:  # type: ignore[no-untyped-def]
    """The driver reports what the module said; retrying is the inbound reader's job."""
    rig = await rig_factory("huawei_e3372", Behaviour(transient_read_error=321))
    rig.em.inject_sms("+15559990001", "not yet")
    await wait_for(lambda: any(type(e).__name__ == "SmsIndication" for e in rig.events))
    ind = next(e for e in rig.events if type(e).__name__ == "SmsIndication")
    assert await rig.modem.read_sms(ind.index, ind.storage) is None
    again = await rig.modem.read_sms(ind.index, ind.storage)
    assert again is not None and dataclasses.replace(again).index == ind.index
