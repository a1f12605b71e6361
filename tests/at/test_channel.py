"""The AT channel over a real pty, driven byte by byte by a scripted peer."""

from __future__ import annotations

import asyncio

import pytest

from gsmgw.at.channel import ATChannel
from gsmgw.at.urc import Urc
from gsmgw.domain import SendOutcomeKind
from gsmgw.errors import ATError, ATTimeout, CMEError, CMSError, PortClosed
from tests.at.conftest import Peer

PDU = "0001000B915155000000F2000005E8329BFD06"  # SMS-SUBMIT "hello" to +15550000002, 18 octets


async def test_command_with_urc_in_the_middle(peer: Peer, channel_factory) -> None:  # type: ignore[no-untyped-def]
    urcs: list[Urc] = []
    ch: ATChannel = await channel_factory(on_urc=urcs.append)
    task = asyncio.create_task(ch.command("AT+CSQ", 1.0))
    await peer.expect(b"AT+CSQ\r")
    peer.write(b'\r\n+CSQ: 20,99\r\n\r\n+CMTI: "SM",3\r\n\r\nOK\r\n')
    resp = await task
    assert resp.lines == ["+CSQ: 20,99"]
    assert [u.name for u in urcs] == ["CMTI"]


async def test_two_line_urc_takes_its_pdu_line(peer: Peer, channel_factory) -> None:  # type: ignore[no-untyped-def]
    urcs: list[Urc] = []
    ch: ATChannel = await channel_factory(on_urc=urcs.append)
    task = asyncio.create_task(ch.command("AT+CPMS?", 1.0))
    await peer.expect(b"\r")
    # +CMT in PDU mode arrives in the middle of another command's answer.
    peer.write(b'\r\n+CMT: ,23\r\n07913366003051F5040B913366304381F900005180719120348004D4F29C0E\r\n')
    peer.write(b'\r\n+CPMS: "SM",1,50,"SM",1,50,"SM",1,50\r\n\r\nOK\r\n')
    resp = await task
    assert resp.lines == ['+CPMS: "SM",1,50,"SM",1,50,"SM",1,50']
    assert urcs == [Urc("CMT", "+CMT: ,23", "07913366003051F5040B913366304381F900005180719120348004D4F29C0E")]


async def test_ambiguous_creg_goes_to_the_query(peer: Peer, channel_factory) -> None:  # type: ignore[no-untyped-def]
    urcs: list[Urc] = []
    ch: ATChannel = await channel_factory(on_urc=urcs.append)
    task = asyncio.create_task(ch.command("AT+CREG?", 1.0))
    await peer.expect(b"\r")
    peer.write(b'\r\n+CREG: 2,1,"00A8","5355E8D",7\r\n\r\nOK\r\n')
    assert (await task).lines == ['+CREG: 2,1,"00A8","5355E8D",7']
    assert urcs == []


async def test_cusd_spanning_lines(peer: Peer, channel_factory) -> None:  # type: ignore[no-untyped-def]
    urcs: list[Urc] = []
    await channel_factory(on_urc=urcs.append)
    peer.write(b'\r\n+CUSD: 1,"Balance: 5,00 EUR\r\n1. Top up\r\n2. Exit",15\r\n')
    for _ in range(100):
        if urcs:
            break
        await asyncio.sleep(0.01)
    assert urcs and urcs[0].line == '+CUSD: 1,"Balance: 5,00 EUR\n1. Top up\n2. Exit",15'


async def test_errors_are_typed(peer: Peer, channel_factory) -> None:  # type: ignore[no-untyped-def]
    ch: ATChannel = await channel_factory()
    for wire, exc_type, code in (
        (b"\r\n+CME ERROR: 10\r\n", CMEError, 10),
        (b"\r\n+CMS ERROR: 321\r\n", CMSError, 321),
        (b"\r\nERROR\r\n", ATError, None),
        (b"\r\nCOMMAND NOT SUPPORT\r\n", ATError, None),
    ):
        task = asyncio.create_task(ch.command("AT+CMGR=9", 1.0))
        await peer.expect(b"AT+CMGR=9\r")
        peer.write(wire)
        with pytest.raises(exc_type) as info:
            await task
        assert getattr(info.value, "code", None) == code
    assert ch.consecutive_timeouts == 0


async def test_echo_on_is_tolerated(peer: Peer, channel_factory) -> None:  # type: ignore[no-untyped-def]
    ch: ATChannel = await channel_factory()
    task = asyncio.create_task(ch.command("AT+CREG?", 1.0))
    await peer.expect(b"\r")
    peer.write(b"AT+CREG?\r\r\n+CREG: 0,5\r\n\r\nOK\r\n")  # TinyGSM #654, SIM800C
    assert (await task).lines == ["+CREG: 0,5"]


async def test_timeout_then_resync_then_next_command_works(peer: Peer, channel_factory) -> None:  # type: ignore[no-untyped-def]
    ch: ATChannel = await channel_factory()
    with pytest.raises(ATTimeout):
        await ch.command("AT+COPS=?", 0.1)
    assert ch.consecutive_timeouts == 1 and ch.needs_resync
    task = asyncio.create_task(ch.command("AT+CSQ", 1.0))
    await peer.expect(b"AT+COPS=?\r")
    # The late answer to the timed-out command arrives now: it must not be taken for AT+CSQ's.
    peer.write(b'\r\n+COPS: (2,"X","X","00101",7)\r\n\r\nOK\r\n')
    await peer.expect(b"AT\r")  # resync probe, sent after the drain
    peer.write(b"\r\nOK\r\n")
    await peer.expect(b"AT+CSQ\r")
    peer.write(b"\r\n+CSQ: 17,0\r\n\r\nOK\r\n")
    assert (await task).lines == ["+CSQ: 17,0"]
    assert ch.consecutive_timeouts == 0 and not ch.needs_resync


async def test_consecutive_timeouts_are_counted(peer: Peer, channel_factory) -> None:  # type: ignore[no-untyped-def]
    ch: ATChannel = await channel_factory()
    with pytest.raises(ATTimeout):
        await ch.command("AT", 0.05)
    with pytest.raises(ATTimeout):  # resync itself times out
        await ch.command("AT+CSQ", 0.05)
    assert ch.consecutive_timeouts >= 3


async def test_one_command_in_flight(peer: Peer, channel_factory) -> None:  # type: ignore[no-untyped-def]
    ch: ATChannel = await channel_factory()
    t1 = asyncio.create_task(ch.command("AT+CGMI", 1.0))
    t2 = asyncio.create_task(ch.command("AT+CGMM", 1.0))
    await peer.expect(b"AT+CGMI\r")
    await asyncio.sleep(0.05)
    assert peer.unread() == b""  # the second command waits for the first final result
    peer.write(b"\r\nSIMCOM_Ltd\r\n\r\nOK\r\n")
    await peer.expect(b"AT+CGMM\r")
    peer.write(b"\r\nSIMCOM_SIM800\r\n\r\nOK\r\n")
    assert (await t1).lines == ["SIMCOM_Ltd"]
    assert (await t2).lines == ["SIMCOM_SIM800"]


async def test_garbage_and_stray_finals_are_survived(peer: Peer, channel_factory) -> None:  # type: ignore[no-untyped-def]
    ch: ATChannel = await channel_factory()
    peer.write(b"\x00\xff\xfe\x80\r\n+CME ERROR: 258\r\n")  # gammu #326: a stray late final
    await asyncio.sleep(0.05)
    task = asyncio.create_task(ch.command("AT", 1.0))
    await peer.expect(b"AT\r")
    peer.write(b"\x00\x00\xc3\x28junk\r\nOK\r\n")
    assert (await task).lines == ["\ufffd(junk"]
    assert ch.unsolicited_unknown >= 1


async def test_trace_records_raw_bytes(peer: Peer, channel_factory) -> None:  # type: ignore[no-untyped-def]
    records: list[tuple[float, str, bytes]] = []
    ch: ATChannel = await channel_factory(trace=lambda ts, d, b: records.append((ts, d, b)))
    task = asyncio.create_task(ch.command("AT", 1.0))
    await peer.expect(b"AT\r")
    peer.write(b"\r\nOK\r\n")
    await task
    assert records[0][1:] == ("tx", b"AT\r")
    assert b"".join(b for _, d, b in records if d == "rx") == b"\r\nOK\r\n"
    assert all(ts > 1e9 for ts, _, _ in records)  # wall-clock timestamps


# --- AT+CMGS -----------------------------------------------------------------------


async def submit(ch: ATChannel, final_timeout_s: float = 1.0):  # type: ignore[no-untyped-def]
    return await ch.submit_pdu(PDU, 18, prompt_timeout_s=0.3, final_timeout_s=final_timeout_s)


async def test_submit_ok_with_urc_between_prompt_and_pdu(peer: Peer, channel_factory) -> None:  # type: ignore[no-untyped-def]
    urcs: list[Urc] = []
    ch: ATChannel = await channel_factory(on_urc=urcs.append)
    task = asyncio.create_task(submit(ch))
    await peer.expect(b"AT+CMGS=18\r")
    peer.write(b'\r\n> \r\n+CMTI: "SM",4\r\n')
    await peer.expect(PDU.encode() + b"\x1a")
    peer.write(b"\r\n+CMGS: 53\r\n\r\nOK\r\n")
    outcome = await task
    assert outcome.kind is SendOutcomeKind.OK and outcome.tp_mr == 53
    assert [u.name for u in urcs] == ["CMTI"]


async def test_the_pdu_leaves_from_the_readers_callback_on_the_prompt(peer: Peer, channel_factory) -> None:  # type: ignore[no-untyped-def]
    # Issue 17: the PDU is written where the prompt is read (the transport's read
    # callback, or the channel's reader task over a plain reader), not a loop turn later
    # by the submitting task (which, in a burst of 16 modems' results, waits behind all
    # of their work: 0.5-1 ms between "> " and the PDU on a pinned core).
    writers: list[tuple[bytes, str]] = []

    def trace(_ts: float, direction: str, data: bytes) -> None:
        if direction == "tx":
            task = asyncio.current_task()
            writers.append((data, task.get_name() if task else ""))

    ch: ATChannel = await channel_factory(trace=trace)
    task = asyncio.create_task(submit(ch), name="submitter")
    await peer.expect(b"AT+CMGS=18\r")
    peer.write(b"\r\n> ")
    await peer.expect(PDU.encode() + b"\x1a")
    peer.write(b"\r\n+CMGS: 9\r\n\r\nOK\r\n")
    outcome = await task
    assert outcome.kind is SendOutcomeKind.OK and outcome.tp_mr == 9
    assert writers[0] == (b"AT+CMGS=18\r", "submitter")
    assert writers[1][0] == PDU.encode() + b"\x1a" and writers[1][1] in ("", "at-reader test")
    # A final result before the prompt still means nothing of the PDU is written
    # (test_submit_refused_before_prompt), even if a prompt follows it.
    task = asyncio.create_task(submit(ch))
    await peer.expect(b"AT+CMGS=18\r")
    peer.write(b"\r\n+CMS ERROR: 302\r\n\r\n> ")
    outcome = await task
    assert (outcome.kind, outcome.cms_code) == (SendOutcomeKind.ERROR, 302) and "before the prompt" in outcome.detail
    await asyncio.sleep(0.05)
    assert peer.received.count(PDU.encode()) == 1


async def test_submit_echo_on(peer: Peer, channel_factory) -> None:  # type: ignore[no-untyped-def]
    ch: ATChannel = await channel_factory()
    task = asyncio.create_task(submit(ch))
    await peer.expect(b"\r")
    peer.write(b"AT+CMGS=18\r\r\n> ")
    await peer.expect(b"\x1a")
    peer.write(PDU.encode() + b"\x1a\r\n+CMGS: 7\r\n\r\nOK\r\n")
    assert (await task).tp_mr == 7


async def test_submit_cms_error_after_pdu(peer: Peer, channel_factory) -> None:  # type: ignore[no-untyped-def]
    ch: ATChannel = await channel_factory()
    task = asyncio.create_task(submit(ch))
    await peer.expect(b"\r")
    peer.write(b"\r\n> ")
    await peer.expect(b"\x1a")
    peer.write(b"\r\n+CMS ERROR: 500\r\n")
    outcome = await task
    assert (outcome.kind, outcome.cms_code) == (SendOutcomeKind.ERROR, 500)


async def test_submit_refused_before_prompt(peer: Peer, channel_factory) -> None:  # type: ignore[no-untyped-def]
    ch: ATChannel = await channel_factory()
    task = asyncio.create_task(submit(ch))
    await peer.expect(b"\r")
    peer.write(b"\r\n+CMS ERROR: 302\r\n")
    outcome = await task
    assert (outcome.kind, outcome.cms_code) == (SendOutcomeKind.ERROR, 302)
    assert "before the prompt" in outcome.detail
    # The channel writes in order: a PDU written for the refused submit would reach
    # the peer before the next command does.
    follow = asyncio.create_task(ch.command("AT+CSQ", 1.0))
    await peer.expect(b"AT+CSQ\r")
    peer.write(b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n")
    assert (await follow).lines == ["+CSQ: 20,99"]
    assert PDU.encode() not in peer.received


async def test_submit_no_prompt_raises_and_writes_no_pdu(peer: Peer, channel_factory) -> None:  # type: ignore[no-untyped-def]
    ch: ATChannel = await channel_factory()
    with pytest.raises(ATTimeout, match="PDU not written"):
        await submit(ch)
    assert PDU.encode() not in peer.received
    # The next command first cancels a possibly open prompt with ESC, then resyncs.
    task = asyncio.create_task(ch.command("AT+CSQ", 1.0))
    await peer.expect(b"\x1b")
    await peer.expect(b"AT\r")
    peer.write(b"\r\nOK\r\n")
    await peer.expect(b"AT+CSQ\r")
    peer.write(b"\r\n+CSQ: 9,0\r\n\r\nOK\r\n")
    assert (await task).lines == ["+CSQ: 9,0"]


async def test_submit_hang_after_pdu_is_unknown(peer: Peer, channel_factory) -> None:  # type: ignore[no-untyped-def]
    ch: ATChannel = await channel_factory()
    task = asyncio.create_task(submit(ch, final_timeout_s=0.2))
    await peer.expect(b"\r")
    peer.write(b"\r\n> ")
    await peer.expect(b"\x1a")
    outcome = await task
    assert outcome.kind is SendOutcomeKind.UNKNOWN
    assert ch.consecutive_timeouts == 1


async def test_port_lost_after_pdu_is_unknown(peer: Peer, channel_factory) -> None:  # type: ignore[no-untyped-def]
    lost: list[str] = []
    ch: ATChannel = await channel_factory(on_lost=lost.append)
    task = asyncio.create_task(submit(ch))
    await peer.expect(b"\r")
    peer.write(b"\r\n> ")
    await peer.expect(b"\x1a")
    peer.unplug()
    outcome = await task
    assert outcome.kind is SendOutcomeKind.UNKNOWN and "port lost" in outcome.detail
    assert lost and ch.closed
    with pytest.raises(PortClosed):
        await ch.command("AT", 0.5)


async def test_port_lost_before_prompt_raises(peer: Peer, channel_factory) -> None:  # type: ignore[no-untyped-def]
    ch: ATChannel = await channel_factory()
    task = asyncio.create_task(submit(ch))
    await peer.expect(b"\r")
    peer.unplug()
    with pytest.raises(PortClosed):
        await task


async def test_bad_pdu_is_a_clear_error(peer: Peer, channel_factory) -> None:  # type: ignore[no-untyped-def]
    ch: ATChannel = await channel_factory()
    with pytest.raises(ValueError, match="hex"):
        await ch.submit_pdu("00ZZ", 1, prompt_timeout_s=0.1, final_timeout_s=0.1)


async def test_info_only_answer_completes_after_grace(peer: Peer, channel_factory) -> None:  # type: ignore[no-untyped-def]
    """Wavecom: "+CPIN: READY" and never an OK (ModemManager mm-broadband-modem-wavecom.c)."""
    ch: ATChannel = await channel_factory(info_grace_s=0.1)
    task = asyncio.create_task(ch.command("AT+CPIN?", 1.0, info_final=True))
    await peer.expect(b"AT+CPIN?\r")
    peer.write(b"\r\n+CPIN: READY\r\n")
    resp = await task
    assert resp.lines == ["+CPIN: READY"]
    assert (ch.consecutive_timeouts, ch.needs_resync, ch.info_only_answers) == (0, False, 1)
    # A late OK to that query must not become the next command's answer.
    peer.write(b"\r\nOK\r\n")
    task = asyncio.create_task(ch.command("AT+CSQ", 1.0))
    await peer.expect(b"AT+CSQ\r")
    peer.write(b"\r\n+CSQ: 17,99\r\n\r\nOK\r\n")
    assert (await task).lines == ["+CSQ: 17,99"]


async def test_info_final_waits_for_a_final_that_does_come(peer: Peer, channel_factory) -> None:  # type: ignore[no-untyped-def]
    ch: ATChannel = await channel_factory(info_grace_s=0.5)
    task = asyncio.create_task(ch.command("AT+CPIN?", 1.0, info_final=True))
    await peer.expect(b"AT+CPIN?\r")
    peer.write(b"\r\n+CPIN: READY\r\n\r\nOK\r\n")
    assert (await task).lines == ["+CPIN: READY"]
    assert ch.info_only_answers == 0
    task = asyncio.create_task(ch.command("AT+CPIN?", 1.0, info_final=True))
    await peer.expect(b"AT+CPIN?\r")
    peer.write(b"\r\n+CME ERROR: 10\r\n")  # an error final still wins
    with pytest.raises(CMEError):
        await task


async def test_info_final_without_the_info_line_still_times_out(peer: Peer, channel_factory) -> None:  # type: ignore[no-untyped-def]
    ch: ATChannel = await channel_factory(info_grace_s=0.05)
    task = asyncio.create_task(ch.command("AT+CPIN?", 0.3, info_final=True))
    await peer.expect(b"AT+CPIN?\r")
    peer.write(b"\r\nRDY\r\n\r\nsomething else\r\n")  # a URC and a stray line are not the answer
    with pytest.raises(ATTimeout):
        await task
    assert ch.consecutive_timeouts == 1


# --- _within: the channel's cheap wait for its own futures ------------------------------------


async def test_within_returns_the_result_and_leaves_a_timed_out_future_alone() -> None:
    from gsmgw.at.channel import _within

    loop = asyncio.get_running_loop()
    fut: asyncio.Future[str] = loop.create_future()
    loop.call_later(0.01, fut.set_result, "OK")
    assert await _within(fut, 1.0) == "OK"
    assert await _within(fut, 0.0) == "OK"  # already done
    slow: asyncio.Future[str] = loop.create_future()
    with pytest.raises(TimeoutError):
        await _within(slow, 0.02)
    assert not slow.done()  # not cancelled: the caller decides
    slow.set_result("late")


async def test_within_a_cancelled_caller_does_not_cancel_the_future() -> None:
    from gsmgw.at.channel import _within

    loop = asyncio.get_running_loop()
    fut: asyncio.Future[str] = loop.create_future()
    task = asyncio.create_task(_within(fut, 5.0))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not fut.done()
    fut.set_exception(ValueError("boom"))
    with pytest.raises(ValueError):
        await _within(fut, 1.0)
