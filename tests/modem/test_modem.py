"""The modem driver against each emulator behaviour, over a real pty.

Every fault test ends with a normal send that works: no stuck state.
"""

from __future__ import annotations

import asyncio

import pytest

from gsmgw.domain import ModemState, SendOutcomeKind
from gsmgw.emulator import Behaviour
from gsmgw.errors import ATTimeout, PortClosed
from gsmgw.modem import (
    Health,
    Identified,
    ModemNotReady,
    PortLost,
    SmsIndication,
    SmsReceived,
    StateChanged,
    StatusReportIndication,
    StatusReportReceived,
)
from gsmgw.sms import StatusReport, decode_pdu
from tests.modem.conftest import submit_parts, wait_for


async def assert_can_send(rig, to: str = "+15550000002") -> None:  # type: ignore[no-untyped-def]
    before = len(rig.em.sent)
    outcomes = await rig.modem.send_pdus(submit_parts(to, "still alive"))
    assert [o.kind for o in outcomes] == [SendOutcomeKind.OK]
    assert len(rig.em.sent) == before + 1
    assert rig.em.sent[-1].tp_mr == outcomes[0].tp_mr


@pytest.mark.parametrize("personality", ["simcom_sim800", "simcom_sim7600", "quectel_ec25", "huawei_e3372"])
async def test_ready_identity_and_send(rig_factory, personality: str) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory(personality)
    m = rig.modem
    assert m.state is ModemState.READY
    assert rig.states()[:3] == ["probing", "registering", "ready"]
    ident = m.identity
    assert ident.imei == rig.em.imei
    assert ident.iccid == rig.em.iccid
    assert ident.imsi == rig.em.imsi
    assert ident.operator == rig.em.operator
    assert ident.own_number == rig.em.number
    assert ident.manufacturer and ident.model
    assert rig.of(Identified)[0].identity == ident
    expected_family = {"simcom_sim800": "simcom_2g", "simcom_sim7600": "simcom_lte", "quectel_ec25": "quectel", "huawei_e3372": "huawei"}
    assert m.quirks.family == expected_family[personality]
    assert m.features.pdu_mode and m.features.cnmi
    await assert_can_send(rig)


async def test_multipart_holds_cmms(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory()
    parts = submit_parts("+15550000002", "x" * 300)
    assert len(parts) == 2
    outcomes = await rig.modem.send_pdus(parts)
    assert [o.kind for o in outcomes] == [SendOutcomeKind.OK] * 2
    assert outcomes[0].tp_mr != outcomes[1].tp_mr
    w = rig.written()
    # AT+CMMS=1 before the first part, released after the last, nothing else in between.
    first, last = w.index(b"AT+CMMS=1\r"), w.index(b"AT+CMMS=0\r")
    between = w[first:last]
    assert between.count(b"AT+CMGS=") == 2
    assert b"AT+CSQ" not in between and b"AT+CREG" not in between


async def test_hang_on_submit_is_unknown_then_recovers(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory(behaviour=Behaviour(hang_on_submit=True))
    outcomes = await rig.modem.send_pdus(submit_parts())
    assert [o.kind for o in outcomes] == [SendOutcomeKind.UNKNOWN]
    assert outcomes[0].tp_mr is None
    rig.em.behaviour.hang_on_submit = False
    await assert_can_send(rig)
    assert rig.modem.state is ModemState.READY


async def test_hang_on_second_part_stops_the_message(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory(personality="quectel_ec25", behaviour=Behaviour(send_latency_s=0.05))
    parts = submit_parts("+15550000002", "y" * 500)
    assert len(parts) == 4
    sent_before = len(rig.em.sent)

    async def hang_after_first() -> None:
        await wait_for(lambda: len(rig.em.sent) > sent_before)
        rig.em.behaviour.hang_on_submit = True

    helper = asyncio.create_task(hang_after_first())
    outcomes = await rig.modem.send_pdus(parts)
    await helper
    assert outcomes[0].kind is SendOutcomeKind.OK
    assert outcomes[-1].kind is SendOutcomeKind.UNKNOWN
    assert len(outcomes) < 4  # remaining parts not attempted
    rig.em.behaviour.hang_on_submit = False
    await assert_can_send(rig)


async def test_cms_error_on_submit(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory(behaviour=Behaviour(cms_error_on_submit=500, cms_error_first_n=1))
    outcomes = await rig.modem.send_pdus(submit_parts())
    assert [(o.kind, o.cms_code) for o in outcomes] == [(SendOutcomeKind.ERROR, 500)]
    assert rig.em.sent == []
    await assert_can_send(rig)


async def test_port_drop_during_submit_is_unknown_and_modem_comes_back(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory(behaviour=Behaviour(drop_port_on_submit=True, replug_after_s=0.1))
    outcomes = await rig.modem.send_pdus(submit_parts())
    assert [o.kind for o in outcomes] == [SendOutcomeKind.UNKNOWN]
    assert rig.of(PortLost)
    rig.em.behaviour.drop_port_on_submit = False
    await wait_for(lambda: rig.modem.state is ModemState.DISCONNECTED)
    await rig.modem.wait_ready(5.0)
    await assert_can_send(rig)


async def test_port_drop_mid_command(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory(behaviour=Behaviour(drop_port_on_command="+CMGL", replug_after_s=0.1))
    with pytest.raises(PortClosed):
        await rig.modem.list_sms()
    rig.em.behaviour.drop_port_on_command = None
    await wait_for(lambda: rig.modem.state is not ModemState.READY)
    await rig.modem.wait_ready(5.0)
    assert await rig.modem.list_sms() == []
    await assert_can_send(rig)


async def test_garbage_before_every_response(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory(behaviour=Behaviour(garbage_before_response=b"\x00\xff\xfe\x80\x1b[junk"))
    assert rig.modem.identity.imei == rig.em.imei
    await assert_can_send(rig)


async def test_urc_in_the_middle_of_a_response(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory(behaviour=Behaviour(urc_in_response='+CMTI: "SM",7'))
    rig.em.inject_sms("+15559999999", "one")
    rig.em.inject_sms("+15559999999", "two")
    await wait_for(lambda: len(rig.of(SmsIndication)) >= 2)
    listed = await rig.modem.list_sms()  # +CMGL answers 4 lines; the URC lands among them
    assert len(listed) == 2
    assert any(e.index == 7 for e in rig.of(SmsIndication))
    health = await rig.modem.health_check()
    assert health.csq == rig.em.behaviour.rssi
    await assert_can_send(rig)


async def test_urc_between_prompt_and_pdu(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory(behaviour=Behaviour(urc_after_prompt='+CMTI: "SM",9'))
    await assert_can_send(rig)
    assert any(e.index == 9 for e in rig.of(SmsIndication))
    await assert_can_send(rig)


async def test_trickled_bytes(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory(behaviour=Behaviour(trickle_s=0.0005))
    await assert_can_send(rig)
    rx = [b for _, d, b in rig.trace if d == "rx"]
    assert sum(1 for b in rx if len(b) == 1) > len(rx) / 2  # it really arrived byte by byte


async def test_echo_on(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory()
    await rig.modem._cmd("ATE1")  # switch echo back on behind the driver's back
    await assert_can_send(rig)
    health = await rig.modem.health_check()
    assert health.registered
    assert b"AT+CSQ\r" in b"".join(b for _, d, b in rig.trace if d == "rx")  # echo did come


async def test_pin_needed(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory(sim_pin="1234", pin="1234")
    assert "sim_locked" in rig.states()
    assert rig.written().count(b'AT+CPIN="1234"') == 1
    await assert_can_send(rig)


async def test_wrong_pin_is_sent_once_only(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory(sim_pin="1234", wait_ready=False, pin="0000", backoff_max_s=0.05)
    await wait_for(lambda: rig.modem.state is ModemState.FAILED)
    # Several reconnect cycles later the PIN has still been tried once: no walk into PUK.
    await wait_for(lambda: rig.written().count(b"AT+CPIN?") >= 3)
    assert rig.written().count(b'AT+CPIN="0000"') == 1
    assert rig.modem.state in (ModemState.FAILED, ModemState.SIM_LOCKED, ModemState.PROBING)
    with pytest.raises(ModemNotReady):
        await rig.modem.send_pdus(submit_parts())


async def test_pin_needed_but_not_configured(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory(sim_pin="1234", wait_ready=False)
    await wait_for(lambda: rig.modem.state is ModemState.FAILED)
    assert b'AT+CPIN="' not in rig.written()


async def test_no_registration_then_recovery_escalates(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory(behaviour=Behaviour(registration=0), wait_ready=False)
    await wait_for(lambda: rig.modem.state is ModemState.REGISTERING)
    with pytest.raises(ModemNotReady):
        await rig.modem.send_pdus(submit_parts())
    assert rig.em.sent == []
    rig.em.behaviour.registration = 1  # coverage comes back; the emulator re-registers on CFUN=1
    await rig.modem.wait_ready(8.0)
    assert b"AT+CFUN=0\r" in rig.written()  # escalation reached level 2
    await assert_can_send(rig)


async def test_unplug_and_replug_returns_to_ready(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory()
    port = rig.modem.settings.port
    old_tty = rig.pm.slave_path
    await rig.pm.unplug()
    await wait_for(lambda: rig.modem.state is ModemState.DISCONNECTED)
    assert rig.of(PortLost)
    with pytest.raises(ModemNotReady):
        await rig.modem.send_pdus(submit_parts())
    await asyncio.sleep(0.3)  # a few failed reopen attempts while unplugged
    await rig.pm.open()
    await rig.modem.wait_ready(5.0)
    # Same configured path (the stable symlink), whatever pts number the kernel gave this time.
    assert rig.modem.settings.port == port
    assert rig.pm.slave_path is not None and old_tty is not None
    assert rig.states().count("ready") == 2
    await assert_can_send(rig)


async def test_replug_helper(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory(personality="quectel_ec25")
    await rig.pm.replug()
    await wait_for(lambda: rig.states().count("ready") >= 2, 5.0)
    await assert_can_send(rig)


async def test_inbound_sms_list_read_delete(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory()
    rig.em.inject_sms("+15559999999", "hi there")
    await wait_for(lambda: bool(rig.of(SmsIndication)))
    ind = rig.of(SmsIndication)[0]
    listed = await rig.modem.list_sms()
    assert [s.index for s in listed] == [ind.index]
    one = await rig.modem.read_sms(ind.index)
    assert one is not None and one.pdu_hex == listed[0].pdu_hex and one.tpdu_length == listed[0].tpdu_length
    await rig.modem.delete_sms(ind.index)
    assert await rig.modem.list_sms() == []
    assert await rig.modem.read_sms(ind.index) is None


async def test_inbound_direct_with_cnma(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory(ack_cmt=True)
    assert rig.modem.features.cnmi.startswith("AT+CNMI=2,2")
    rig.em.inject_sms("+15559999999", "direct")
    await wait_for(lambda: bool(rig.of(SmsReceived)))
    await wait_for(lambda: b"AT+CNMA\r" in rig.written())
    assert await rig.modem.list_sms() == []  # acked: not stored


async def test_status_report_stored_sim800(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory()
    other = await rig_factory()
    assert rig.modem.features.status_reports == "stored (+CDSI)"
    outcomes = await rig.modem.send_pdus(submit_parts(other.em.number, "report me", status_report=True))
    assert outcomes[0].ok
    await wait_for(lambda: bool(rig.of(StatusReportIndication)))
    [indication] = rig.of(StatusReportIndication)
    stored = await rig.modem.read_sms(indication.index, indication.storage)
    assert stored is not None
    report = decode_pdu(stored.pdu_hex, tpdu_length=stored.tpdu_length)
    assert isinstance(report, StatusReport)
    assert (report.tp_mr, report.recipient, report.status) == (outcomes[0].tp_mr, other.em.number, 0)
    assert not rig.of(StatusReportReceived)  # stored and announced, not routed with the URC


async def test_status_report_direct_quectel(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory(personality="quectel_ec25")
    other = await rig_factory()
    assert rig.modem.features.status_reports == "direct (+CDS)"
    outcomes = await rig.modem.send_pdus(submit_parts(other.em.number, "report me", status_report=True))
    await wait_for(lambda: bool(rig.of(StatusReportReceived)))
    assert outcomes[0].ok


@pytest.mark.parametrize("personality", ["simcom_sim800", "huawei_e3372"])
async def test_ussd(rig_factory, personality: str) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory(personality)
    text = await rig.modem.ussd("*100#", timeout_s=2.0)
    assert text == rig.em.behaviour.ussd_reply
    if personality == "huawei_e3372":
        assert b'AT+CUSD=1,"AA180C3602",15' in rig.written()


async def test_health_and_storage_full(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory(behaviour=Behaviour(storage_full=True, rssi=17))
    await wait_for(lambda: len(rig.of(Health)) >= 2)
    h = rig.of(Health)[-1]
    assert h.csq == 17 and h.signal_dbm == -79 and h.registered
    assert h.storage_used == h.storage_total and h.storage_total


async def test_stop_lets_an_inflight_send_finish(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory(behaviour=Behaviour(send_latency_s=0.3))
    send = asyncio.create_task(rig.modem.send_pdus(submit_parts()))
    await wait_for(lambda: b"\x1a" in rig.written())
    await rig.modem.stop()
    outcomes = await send
    assert [o.kind for o in outcomes] == [SendOutcomeKind.OK]
    await asyncio.wait_for(rig.task, 3.0)
    assert rig.modem.state is ModemState.DISCONNECTED


async def test_never_written_while_a_send_is_pending(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory(behaviour=Behaviour(send_latency_s=0.4), health_interval_s=0.05)
    start = len(rig.trace)
    await rig.modem.send_pdus(submit_parts())
    # Health polls were due during the 0.4 s radio round trip; none was written before the final.
    final_at = next(ts for ts, d, b in rig.trace[start:] if d == "rx" and b"+CMGS" in b)
    pdu_at = next(ts for ts, d, b in rig.trace[start:] if d == "tx" and b.endswith(b"\x1a"))
    assert final_at - pdu_at >= 0.35
    assert not [b for ts, d, b in rig.trace[start:] if d == "tx" and pdu_at < ts < final_at]
    assert rig.of(Health)  # the health poll does run otherwise


async def test_not_ready_raises_before_writing(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory(behaviour=Behaviour(registration=0), wait_ready=False)
    await wait_for(lambda: rig.modem.state is ModemState.REGISTERING)
    n = len(rig.written())
    with pytest.raises(ModemNotReady):
        await rig.modem.send_pdus(submit_parts())
    with pytest.raises(ModemNotReady):
        await rig.modem.ussd("*100#")
    assert b"AT+CMGS" not in rig.written()[n:]


async def test_prompt_timeout_raises_nothing_sent(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory()
    # The module goes deaf: its interpreter is detached while the pty stays open,
    # so AT+CMGS is written but no prompt ever comes.
    await rig.em.detach()
    with pytest.raises(ATTimeout, match="PDU not written"):
        await rig.modem.send_pdus(submit_parts())
    assert rig.em.sent == []


async def test_silent_modem_is_declared_dead_escalates_and_comes_back(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory(command_timeout_s=0.1, health_interval_s=0.05, registration_timeout_s=0.3)
    await rig.em.detach()  # the module stops answering; the port stays open
    await wait_for(lambda: any("consecutive timeouts" in (e.reason or "") for e in rig.of(StateChanged)), 5.0)
    # Escalation: reopen, then AT+CFUN=0/1, then AT+CFUN=1,1, then FAILED (still retrying).
    await wait_for(lambda: b"AT+CFUN=1,1\r" in rig.written(), 10.0)
    assert rig.written().index(b"AT+CFUN=0\r") < rig.written().index(b"AT+CFUN=1,1\r")
    await wait_for(lambda: rig.modem.state is ModemState.FAILED, 10.0)
    with pytest.raises(ModemNotReady):
        await rig.modem.send_pdus(submit_parts())
    await rig.pm.replug()  # a human power-cycles the stick
    await rig.modem.wait_ready(5.0)
    await assert_can_send(rig)


async def test_socket_transport_via_tcp_bridge(rig_factory) -> None:  # type: ignore[no-untyped-def]
    """socket://host:port (a ser2net-style bridge in front of the emulator's pty)."""
    from gsmgw.config import ModemConfig
    from gsmgw.modem import Modem
    from gsmgw.transport import open_port
    from tests.modem.conftest import FAST

    rig = await rig_factory()
    await rig.modem.stop()  # free the pty for the bridge
    await asyncio.wait_for(rig.task, 3.0)
    pumps: list[asyncio.Task[None]] = []

    async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(4096):
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            dst.close()

    async def on_client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        pr, pw = await open_port(str(rig.pm.path))
        pumps.append(asyncio.create_task(pump(r, pw)))
        pumps.append(asyncio.create_task(pump(pr, w)))

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    modem = Modem(ModemConfig(id="bridged", port=f"socket://127.0.0.1:{port}", **FAST))  # type: ignore[arg-type]
    task = asyncio.create_task(modem.run())
    try:
        await modem.wait_ready(5.0)
        assert modem.identity.imei == rig.em.imei
        outcomes = await modem.send_pdus(submit_parts())
        assert outcomes[0].ok
    finally:
        await modem.stop()
        await asyncio.wait_for(task, 3.0)
        server.close()
        await server.wait_closed()
        for t in pumps:
            t.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)


async def test_status_report_read_back_from_the_announced_storage(rig_factory) -> None:  # type: ignore[no-untyped-def]
    from gsmgw.sms import StatusReport, decode_pdu

    rig = await rig_factory()
    other = await rig_factory()
    outcomes = await rig.modem.send_pdus(submit_parts(other.em.number, "report me", status_report=True))
    await wait_for(lambda: bool(rig.of(StatusReportIndication)))
    ind = rig.of(StatusReportIndication)[0]
    stored = await rig.modem.read_sms(ind.index, ind.storage)
    assert stored is not None and stored.storage == ind.storage
    report = decode_pdu(stored.pdu_hex, tpdu_length=stored.tpdu_length)
    assert isinstance(report, StatusReport) and report.tp_mr == outcomes[0].tp_mr
    await rig.modem.delete_sms(ind.index, ind.storage)
    assert await rig.modem.read_sms(ind.index, ind.storage) is None


async def test_other_storage_is_selected_then_restored(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory()
    rig.em.inject_sms("+15559999999", "in SM")
    await wait_for(lambda: bool(rig.of(SmsIndication)))
    start = len(rig.written())
    assert await rig.modem.list_sms(storage="ME") == []
    w = rig.written()[start:]
    assert w.index(b'AT+CPMS="ME"\r') < w.index(b"AT+CMGL=4\r") < w.index(b'AT+CPMS="SM"\r')
    assert [s.storage for s in await rig.modem.list_sms()] == ["SM"]


async def test_storage_full_is_reported(rig_factory) -> None:  # type: ignore[no-untyped-def]
    from gsmgw.modem import StorageFull

    rig = await rig_factory(personality="quectel_ec25", behaviour=Behaviour(storage_full=True))
    rig.em.inject_sms("+15559999999", "no room")
    await wait_for(lambda: bool(rig.of(StorageFull)))
    assert rig.of(StorageFull)[0].storage == "SM"


async def test_module_reboots_by_itself_and_is_reinitialised(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory()
    before = rig.written().count(b"AT+CMGF=0\r")
    await rig.modem._cmd("AT+CFUN=1,1")  # as if the module had browned out: RDY arrives while READY
    await wait_for(lambda: rig.states().count("ready") >= 2, 5.0)
    assert rig.written().count(b"AT+CMGF=0\r") == before + 1  # settings restored after the reboot
    await assert_can_send(rig)


async def test_stop_interrupts_a_registration_wait(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory(behaviour=Behaviour(registration=0), wait_ready=False, registration_timeout_s=30.0)
    await wait_for(lambda: rig.modem.state is ModemState.REGISTERING)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await rig.modem.stop()
    assert loop.time() - t0 < 1.0
    assert rig.task.done() and rig.modem.state is ModemState.DISCONNECTED


async def test_concurrent_ussd_sessions_do_not_steal_answers(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory()
    a, b = await asyncio.gather(rig.modem.ussd("*100#", 2.0), rig.modem.ussd("*101#", 2.0))
    assert a == b == rig.em.behaviour.ussd_reply
    assert rig.written().count(b"AT+CUSD=1,") == 2


async def test_registration_lost_while_ready(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory(health_interval_s=0.05)
    await rig.modem._cmd("AT+CFUN=0")  # the radio drops off the network behind the driver's back
    await wait_for(lambda: "registering" in rig.states()[3:], 3.0)
    with pytest.raises(ModemNotReady):
        await rig.modem.send_pdus(submit_parts())
    await wait_for(lambda: rig.states().count("ready") >= 2, 8.0)  # escalation's CFUN=1 brings it back
    await assert_can_send(rig)


async def test_three_modems_busy_traffic_with_polls_and_inbound(rig_factory) -> None:  # type: ignore[no-untyped-def]
    """A small soak: sends, inbound SMS and 20 ms health polls interleave on three ports."""
    rigs = [await rig_factory(p, health_interval_s=0.02) for p in ("simcom_sim800", "quectel_ec25", "huawei_e3372")]

    async def traffic(rig, peer) -> list[SendOutcomeKind]:  # type: ignore[no-untyped-def]
        kinds: list[SendOutcomeKind] = []
        for i in range(8):
            rig.em.inject_sms("+15559999999", f"inbound {i}")
            outcomes = await rig.modem.send_pdus(submit_parts(peer.em.number, f"msg {i} " + "z" * (i * 40)))
            kinds += [o.kind for o in outcomes]
        return kinds

    results = await asyncio.gather(*(traffic(r, rigs[(i + 1) % 3]) for i, r in enumerate(rigs)))
    assert all(k is SendOutcomeKind.OK for kinds in results for k in kinds)
    for rig in rigs:
        assert rig.modem.state is ModemState.READY
        await wait_for(lambda rig=rig: len(rig.of(SmsIndication)) >= 8)
        assert len(await rig.modem.list_sms()) >= 8
