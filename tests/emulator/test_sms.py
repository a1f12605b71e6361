"""SMS commands over a real pty, with every PDU checked by python-gammu (an independent codec)."""

from __future__ import annotations

import asyncio
import re

import gammu
import pytest

from gsmgw.emulator import Behaviour, Network, StoredSms
from gsmgw.sms import encode_submit
from tests.emulator.emu_client import FINAL_RE, PtyClient, lines_of, rig, submit

pytestmark = pytest.mark.timeout(10)

# A 3GPP-style SMS-SUBMIT built by hand (not by gsmgw): SMSC "use default" (00), first octet
# 11 (SUBMIT, VPF relative), MR 00, DA +15550000002 (0B 91 5155000000F2), PID 00, DCS 00,
# VP AA (4 days), UDL 05, "hello" packed in GSM 7-bit: E8 32 9B FD 06.
HAND_SUBMIT = "0011000B915155000000F20000AA05E8329BFD06"
HAND_SUBMIT_LEN = 19


def gammu_decode(pdu_hex: str) -> dict:
    return gammu.DecodePDU(bytes.fromhex(pdu_hex))


async def test_cmgs_prompt_and_ctrl_z_sends(network: Network) -> None:
    async with rig(network) as a, rig(network, number="+15550000002") as b:
        await a.ready()
        await b.ready()
        out = await submit(a.client, HAND_SUBMIT, HAND_SUBMIT_LEN)
        assert lines_of(out) == ["+CMGS: 0", "OK"]
        assert a.modem.sent[0].destination == "+15550000002"
        assert a.modem.sent[0].pdu == HAND_SUBMIT
        cmti = await b.client.read_until(b'+CMTI: "SM",1\r\n')
        assert cmti.endswith(b'\r\n+CMTI: "SM",1\r\n')
        listing = lines_of(await b.client.cmd("AT+CMGL=4"))
        assert re.fullmatch(r"\+CMGL: 1,0,,\d+", listing[0]) and listing[-1] == "OK"
        decoded = gammu_decode(listing[1])
        assert decoded["Type"] == "Deliver"
        assert decoded["Text"] == "hello"
        assert decoded["Number"] == "+15550000001"
        assert decoded["SMSC"]["Number"] == network.smsc
        assert int(listing[0].rsplit(",", 1)[1]) == len(bytes.fromhex(listing[1])) - 1 - bytes.fromhex(listing[1])[0]


async def test_cmgs_echo_shows_prompt_and_pdu(network: Network) -> None:
    async with rig(network) as r:
        await asyncio.sleep(0.02)
        r.client.buf.clear()
        r.client.write(f"AT+CMGS={HAND_SUBMIT_LEN}\r".encode())
        assert await r.client.read_until(b"> ") == f"AT+CMGS={HAND_SUBMIT_LEN}\r\r\n> ".encode()
        r.client.write(HAND_SUBMIT.encode() + b"\x1a")
        out = await r.client.read_until(b"OK\r\n")
        assert out == HAND_SUBMIT.encode() + b"\r\n+CMGS: 0\r\n\r\nOK\r\n"


async def test_cmgs_length_mismatch_and_bad_pdu(network: Network) -> None:
    async with rig(network) as r:
        await r.ready()
        await r.client.cmd("AT+CMEE=1")
        assert await submit(r.client, HAND_SUBMIT, HAND_SUBMIT_LEN + 1) == "\r\n+CMS ERROR: 304\r\n"
        assert await submit(r.client, HAND_SUBMIT + "0", HAND_SUBMIT_LEN) == "\r\n+CMS ERROR: 304\r\n"
        assert await submit(r.client, "00" + "ZZ" * HAND_SUBMIT_LEN, HAND_SUBMIT_LEN) == "\r\n+CMS ERROR: 304\r\n"
        # A DELIVER is not something a phone can submit.
        deliver = "0004" + HAND_SUBMIT[4:]
        assert await submit(r.client, deliver, HAND_SUBMIT_LEN) == "\r\n+CMS ERROR: 304\r\n"
        assert await r.client.cmd("AT+CMGS=0") == "\r\n+CMS ERROR: 304\r\n"
        assert await r.client.cmd("AT+CMGS=999") == "\r\n+CMS ERROR: 304\r\n"
        assert r.modem.sent == []
        assert lines_of(await submit(r.client, HAND_SUBMIT, HAND_SUBMIT_LEN)) == ["+CMGS: 0", "OK"]


async def test_cmgs_escape_cancels(network: Network) -> None:
    async with rig(network) as r:
        await r.ready()
        r.client.write(f"AT+CMGS={HAND_SUBMIT_LEN}\r".encode())
        await r.client.read_until(b"> ")
        r.client.write(HAND_SUBMIT[:10].encode() + b"\x1b")
        assert await r.client.read_until(b"OK\r\n") == b"\r\nOK\r\n"
        assert r.modem.sent == []
        assert lines_of(await r.client.cmd("AT")) == ["OK"]


async def test_tp_mr_counts_per_sim_mod_256(network: Network) -> None:
    async with rig(network) as r:
        await r.ready()
        r.modem._next_mr = 254
        mrs = []
        for _ in range(3):
            mrs.append(lines_of(await submit(r.client, HAND_SUBMIT, HAND_SUBMIT_LEN))[0])
        # The modem assigns TP-MR itself whatever the PDU says (the PDU has MR 00).
        assert mrs == ["+CMGS: 254", "+CMGS: 255", "+CMGS: 0"]


async def test_cmgs_needs_registration_and_sim(network: Network) -> None:
    async with rig(network, behaviour=Behaviour(registration=0)) as r:
        await r.ready()
        await r.client.cmd("AT+CMEE=1")
        assert await submit(r.client, HAND_SUBMIT, HAND_SUBMIT_LEN) == "\r\n+CMS ERROR: 331\r\n"
    async with rig(network, number="+15550000002", pin="1234") as r:
        await r.ready()
        await r.client.cmd("AT+CMEE=1")
        assert await r.client.cmd("AT+CMGS=19") == "\r\n+CMS ERROR: 311\r\n"


async def test_status_report_direct_and_stored(network: Network) -> None:
    enc = encode_submit("+447700900123", "report me", status_report=True)
    part = enc.parts[0]
    async with rig(network) as r:
        await r.ready()
        await r.client.cmd("AT+CNMI=2,1,0,1,0")
        assert lines_of(await submit(r.client, part.pdu, part.tpdu_length)) == ["+CMGS: 0", "OK"]
        cds = (await r.client.read_until(re.compile(rb"\+CDS: \d+\r\n[0-9A-F]+\r\n"))).decode()
        header, pdu = lines_of(cds)
        assert int(header.split()[1]) == len(bytes.fromhex(pdu)) - 1 - bytes.fromhex(pdu)[0]
        report = gammu_decode(pdu)
        assert report["Type"] == "Status_Report"
        assert report["Number"] == "+447700900123"
        assert report["MessageReference"] == 0
        assert report["DeliveryStatus"] == 0
        # <ds> 2: stored, announced with +CDSI, readable with +CMGR.
        await r.client.cmd("AT+CNMI=2,1,0,2,0")
        assert lines_of(await submit(r.client, part.pdu, part.tpdu_length)) == ["+CMGS: 1", "OK"]
        cdsi = await r.client.read_until(re.compile(rb'\+CDSI: "SM",\d+\r\n'))
        index = int(cdsi.decode().strip().rsplit(",", 1)[1])
        _, pdu = lines_of(await r.client.cmd(f"AT+CMGR={index}"))[:2]
        assert gammu_decode(pdu)["MessageReference"] == 1


async def test_delivery_rules_fail_matching_numbers() -> None:
    from gsmgw.emulator import DeliveryRule

    net = Network(report_delay_s=0.0, delivery_rule=[DeliveryRule(r"\+44.*", 0x41)])
    try:
        async with rig(net) as r:
            await r.ready()
            await r.client.cmd("AT+CNMI=2,1,0,1,0")
            for to, expected in (("+447700900123", 0x41), ("+33612345678", 0x00)):
                part = encode_submit(to, "x", status_report=True).parts[0]
                await submit(r.client, part.pdu, part.tpdu_length)
                cds = (await r.client.read_until(re.compile(rb"\+CDS: \d+\r\n[0-9A-F]+\r\n"))).decode()
                report = gammu_decode(lines_of(cds)[1])
                assert report["DeliveryStatus"] == expected, to
            assert [(o.destination, o.status) for o in net.outbound] == [
                ("+447700900123", 0x41), ("+33612345678", 0x00)]
    finally:
        await net.aclose()


async def test_no_report_without_request(network: Network) -> None:
    async with rig(network) as r:
        await r.ready()
        await r.client.cmd("AT+CNMI=2,1,0,1,0")
        part = encode_submit("+447700900123", "no report").parts[0]
        await submit(r.client, part.pdu, part.tpdu_length)
        await network.drain()
        assert b"+CDS" not in await r.client.quiet(0.05)


async def test_multipart_between_sims_keeps_udh(network: Network) -> None:
    text = "Ünïcødé and a long text " * 6
    enc = encode_submit("+15550000002", text, concat_ref=0x42)
    assert len(enc.parts) > 1
    async with rig(network) as a, rig(network, number="+15550000002") as b:
        await a.ready()
        await b.ready()
        for part in enc.parts:
            assert "OK" in await submit(a.client, part.pdu, part.tpdu_length)
        await network.drain()
        await b.client.quiet(0.02)
        listing = lines_of(await b.client.cmd("AT+CMGL=4"))
        pdus = listing[1:-1:2]
        assert len(pdus) == len(enc.parts)
        decoded = [gammu_decode(p) for p in pdus]
        assert all(d["UDH"]["ID8bit"] == 0x42 for d in decoded)
        assert [d["UDH"]["PartNumber"] for d in decoded] == list(range(1, len(enc.parts) + 1))
        assert "".join(d["Text"] for d in decoded) == text


async def test_cnmi_direct_cmt_needs_cnma_with_csms_1(network: Network) -> None:
    async with rig(network, behaviour=Behaviour(cnma_timeout_s=0.1)) as r:
        await r.ready()
        c = r.client
        await c.cmd("AT+CMEE=1;+CSMS=1;+CNMI=2,2,0,0,0")
        assert await c.cmd("AT+CNMA") == "\r\n+CMS ERROR: 340\r\n"
        r.modem.inject_sms("+447700900123", "direct one")
        header, pdu = lines_of((await c.read_until(re.compile(rb"\+CMT: ,\d+\r\n[0-9A-F]+\r\n"))).decode())
        assert gammu_decode(pdu)["Text"] == "direct one"
        assert int(header.rsplit(",", 1)[1]) == len(bytes.fromhex(pdu)) - 1 - bytes.fromhex(pdu)[0]
        assert lines_of(await c.cmd("AT+CNMA")) == ["OK"]
        assert r.modem.storages["SM"].used == 0  # routed directly, not stored
        # Not acknowledged in time: routing falls back to <mt>=0/<ds>=0 and the SMS is stored.
        r.modem.inject_sms("+447700900123", "direct two")
        await asyncio.sleep(0.2)
        assert b"+CMT: " in await c.quiet(0.0)
        assert lines_of(await c.cmd("AT+CNMI?")) == ["+CNMI: 2,0,0,0,0", "OK"]
        assert r.modem.storages["SM"].used == 1


async def test_cnmi_mode_0_buffers_until_mode_1(network: Network) -> None:
    async with rig(network) as r:
        await r.ready()
        await r.client.cmd("AT+CNMI=0,1,0,0,0")
        r.modem.inject_sms("+447700900123", "buffered")
        assert b"+CMTI" not in await r.client.quiet(0.05)
        out = await r.client.cmd("AT+CNMI=2,1,0,0,0")
        out += (await r.client.read_until(b"\r\n+CMTI: \"SM\",1\r\n")).decode()
        assert lines_of(out) == ["OK", '+CMTI: "SM",1']


async def test_cnmi_mode_0_keeps_a_buffered_cmt_with_its_pdu(network: Network) -> None:
    async with rig(network) as r:
        await r.ready()
        await r.client.cmd("AT+CNMI=2,2,0,0,0")
        r.modem.cnmi[0] = 0  # as if the TA link were reserved: indications are buffered
        r.modem.inject_sms("+447700900123", "held back")
        assert await r.client.quiet(0.05) == b""
        await r.client.cmd("AT+CNMI=2,2,0,0,0")
        out = (await r.client.read_until(re.compile(rb"\+CMT: ,\d+\r\n[0-9A-F]+\r\n"))).decode()
        assert re.search(r"\r\n\+CMT: ,\d+\r\n[0-9A-F]+\r\n$", out), out
        assert gammu_decode(lines_of(out)[-1])["Text"] == "held back"


async def test_cmgl_stat_filters_and_marks_read(network: Network) -> None:
    async with rig(network) as r:
        await r.ready()
        for i in range(3):
            r.modem.inject_sms("+447700900123", f"msg {i}")
        await r.client.quiet(0.05)
        assert lines_of(await r.client.cmd("AT+CMGR=2"))[0].startswith("+CMGR: 0,,")
        unread = lines_of(await r.client.cmd("AT+CMGL=0"))
        assert [ln.split(",")[0] for ln in unread[:-1:2]] == ["+CMGL: 1", "+CMGL: 3"]
        assert lines_of(await r.client.cmd("AT+CMGL=0")) == ["OK"]  # listing marked them read
        read = lines_of(await r.client.cmd("AT+CMGL=1"))
        assert len(read[:-1]) == 6
        assert [gammu_decode(p)["Text"] for p in read[1:-1:2]] == ["msg 0", "msg 1", "msg 2"]
        assert lines_of(await r.client.cmd("AT+CMGL=4"))[-1] == "OK"
        await r.client.cmd("AT+CMEE=1")
        assert await r.client.cmd("AT+CMGL=9") == "\r\n+CMS ERROR: 304\r\n"


async def test_cmgr_empty_and_out_of_range(network: Network) -> None:
    async with rig(network) as r:
        await r.ready()
        await r.client.cmd("AT+CMEE=1")
        assert lines_of(await r.client.cmd("AT+CMGR=5")) == ["OK"]  # SIM800: empty slot -> OK
        assert await r.client.cmd("AT+CMGR=31") == "\r\n+CMS ERROR: 321\r\n"
        assert await r.client.cmd("AT+CMGR=0") == "\r\n+CMS ERROR: 321\r\n"


async def test_cmgd_delflags(network: Network) -> None:
    async with rig(network) as r:
        await r.ready()
        sm = r.modem.storages["SM"]
        pdu = "07915155009099F9240B915155000000F100006211122224000001C1"

        def fill() -> None:
            sm.slots = [None] * sm.capacity
            for stat in (0, 1, 2, 3):
                sm.store(StoredSms(stat, pdu))

        def stats() -> list[int]:
            return sorted(s.stat for _, s in sm.items())

        for flag, left in ((1, [0, 2, 3]), (2, [0, 2]), (3, [0]), (4, [])):
            fill()
            assert lines_of(await r.client.cmd(f"AT+CMGD=1,{flag}")) == ["OK"]
            assert stats() == left, flag
        fill()
        assert lines_of(await r.client.cmd("AT+CMGD=2")) == ["OK"]
        assert stats() == [0, 2, 3]
        assert lines_of(await r.client.cmd("AT+CMGD=2")) == ["OK"]  # already empty
        await r.client.cmd("AT+CMEE=1")
        assert await r.client.cmd("AT+CMGD=99") == "\r\n+CMS ERROR: 321\r\n"
        assert await r.client.cmd("AT+CMGD=1,5") == "\r\nERROR\r\n"


async def test_storage_full_rejects_inbound(network: Network) -> None:
    async with rig(network, storage_capacity={"SM": 2, "ME": 2}) as r:
        await r.ready()
        await r.client.cmd("AT+CMEE=1")
        r.modem.inject_sms("+447700900123", "one")
        r.modem.inject_sms("+447700900123", "two")
        assert (await r.client.quiet(0.05)).count(b"+CMTI") == 2
        assert lines_of(await r.client.cmd("AT+CPMS?"))[0] == '+CPMS: "SM",2,2,"SM",2,2,"SM",2,2'
        r.modem.inject_sms("+447700900123", "three")
        out = await r.client.quiet(0.05)
        assert b"+CMTI" not in out  # the third could not be indicated: nowhere to store it
        assert r.modem.storages["SM"].used == 2


async def test_storage_full_behaviour_and_sender_report(network: Network) -> None:
    async with rig(network) as a, rig(network, number="+15550000002",
                                      behaviour=Behaviour(storage_full=True)) as b:
        await a.ready()
        await b.ready()
        assert lines_of(await b.client.cmd("AT+CPMS?"))[0] == '+CPMS: "SM",30,30,"SM",30,30,"SM",30,30'
        await a.client.cmd("AT+CNMI=2,1,0,1,0")
        part = encode_submit("+15550000002", "no room", status_report=True).parts[0]
        await submit(a.client, part.pdu, part.tpdu_length)
        cds = (await a.client.read_until(re.compile(rb"\+CDS: \d+\r\n[0-9A-F]+\r\n"))).decode()
        assert gammu_decode(lines_of(cds)[1])["DeliveryStatus"] == 0x62


async def test_cusd_balance(network: Network) -> None:
    async with rig(network) as r:
        await r.ready()
        assert lines_of(await r.client.cmd('AT+CUSD=1,"*100#",15')) == ["OK"]
        out = (await r.client.read_until(re.compile(rb"\+CUSD: [^\r]*\r\n"))).decode()
        assert lines_of(out) == ['+CUSD: 0,"Your balance is 12.34 EUR. Valid until 31.12.2027.",15']
        assert lines_of(await r.client.cmd('AT+CUSD=1,"*999#",15')) == ["OK"]
        assert b"+CUSD: 4" in await r.client.read_until(b"+CUSD: 4\r\n")
        assert lines_of(await r.client.cmd("AT+CUSD?")) == ["+CUSD: 1", "OK"]


async def test_cmms(network: Network) -> None:
    async with rig(network) as r:
        await r.ready()
        assert lines_of(await r.client.cmd("AT+CMMS=2;+CMMS?")) == ["+CMMS: 2", "OK"]
        assert lines_of(await r.client.cmd("AT+CMMS=1;+CMMS?")) == ["+CMMS: 1", "OK"]
        r.modem._cmms_deadline = 0.0  # the 1-5 s of idle have elapsed
        assert lines_of(await r.client.cmd("AT+CMMS?")) == ["+CMMS: 0", "OK"]
        assert lines_of(await r.client.cmd("AT+CMMS=?")) == ["+CMMS: (0-2)", "OK"]


async def test_text_mode_send_and_list(network: Network) -> None:
    async with rig(network) as a, rig(network, number="+15550000002") as b:
        await a.ready()
        await b.ready()
        await a.client.cmd("AT+CMGF=1")
        a.client.write(b'AT+CMGS="+15550000002"\r')
        await a.client.read_until(b"> ")
        a.client.write(b"typed in minicom\x1a")
        assert lines_of((await a.client.read_until(b"OK\r\n")).decode()) == ["+CMGS: 0", "OK"]
        await network.drain()
        await b.client.cmd("AT+CMGF=1")
        listing = lines_of(await b.client.cmd('AT+CMGL="ALL"'))
        assert re.fullmatch(r'\+CMGL: 1,"REC UNREAD","\+15550000001","","\d\d/\d\d/\d\d,\d\d:\d\d:\d\d\+00"',
                            listing[0]), listing
        assert listing[1:] == ["typed in minicom", "OK"]
        read = lines_of(await b.client.cmd("AT+CMGR=1"))
        assert read[0].startswith('+CMGR: "REC READ","+15550000001","","') and read[1] == "typed in minicom"


async def test_inject_long_sms_arrives_as_parts(network: Network) -> None:
    async with rig(network) as r:
        await r.ready()
        r.modem.inject_sms("+447700900123", "x" * 200)
        out = await r.client.read_until(b'+CMTI: "SM",2\r\n')
        assert out.count(b"+CMTI") == 2


async def test_pty_client_sees_nothing_before_boot(network: Network) -> None:
    async with rig(network, behaviour=Behaviour(boot_delay_s=0.05)) as r:
        client: PtyClient = r.client
        assert b"RDY" not in await client.quiet(0.01)
        assert b"SMS Ready" in await client.read_until(b"SMS Ready\r\n")


async def test_cmgw_stores_and_cmss_sends_from_storage(network: Network) -> None:
    async with rig(network, storage_capacity={"SM": 2, "ME": 2}) as a, rig(network, number="+15550000002") as b:
        await a.ready()
        await b.ready()
        c = a.client
        await c.cmd("AT+CMEE=1")
        c.write(f"AT+CMGW={HAND_SUBMIT_LEN}\r".encode())
        await c.read_until(b"> ")
        c.write(HAND_SUBMIT.encode() + b"\x1a")
        assert lines_of((await c.read_until(FINAL_RE)).decode()) == ["+CMGW: 1", "OK"]
        listing = lines_of(await c.cmd("AT+CMGL=2"))
        assert listing == [f"+CMGL: 1,2,,{HAND_SUBMIT_LEN}", HAND_SUBMIT, "OK"]
        assert gammu_decode(listing[1])["Type"] == "Submit"
        assert lines_of(await c.cmd("AT+CMSS=1")) == ["+CMSS: 0", "OK"]
        assert lines_of(await c.cmd("AT+CMGL=3"))[0] == f"+CMGL: 1,3,,{HAND_SUBMIT_LEN}"  # now STO SENT
        assert await c.cmd("AT+CMSS=2") == "\r\n+CMS ERROR: 321\r\n"
        await network.drain()
        assert b.modem.storages["SM"].used == 1  # it really went through the network
        # Fill the memory: the next write is refused with 322 (memory full).
        c.write(f"AT+CMGW={HAND_SUBMIT_LEN},3\r".encode())
        await c.read_until(b"> ")
        c.write(HAND_SUBMIT.encode() + b"\x1a")
        assert lines_of((await c.read_until(FINAL_RE)).decode()) == ["+CMGW: 2", "OK"]
        c.write(f"AT+CMGW={HAND_SUBMIT_LEN}\r".encode())
        await c.read_until(b"> ")
        c.write(HAND_SUBMIT.encode() + b"\x1a")
        assert (await c.read_until(FINAL_RE)).decode() == "\r\n+CMS ERROR: 322\r\n"


async def test_cmss_refuses_a_received_message(network: Network) -> None:
    async with rig(network) as r:
        await r.ready()
        await r.client.cmd("AT+CMEE=1")
        r.modem.inject_sms("+447700900123", "inbound")
        await r.client.quiet(0.03)
        assert await r.client.cmd("AT+CMSS=1") == "\r\n+CMS ERROR: 302\r\n"
