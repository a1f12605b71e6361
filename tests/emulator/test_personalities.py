"""Module families: identity strings, boot noise, vendor URCs and error habits."""

from __future__ import annotations

import asyncio
import dataclasses
import re

import pytest

from gsmgw.emulator import PERSONALITIES, Behaviour, Network
from tests.emulator.emu_client import lines_of, rig

pytestmark = pytest.mark.timeout(10)


def pack7(text: str) -> str:
    """Reference GSM 7-bit packer for ASCII-range text (TS 23.038 §6.1.2.1.1), test-local."""
    bits = 0
    nbits = 0
    out = bytearray()
    for ch in text:
        bits |= (ord(ch) & 0x7F) << nbits
        nbits += 7
        while nbits >= 8:
            out.append(bits & 0xFF)
            bits >>= 8
            nbits -= 8
    if nbits:
        out.append(bits & 0xFF)
    return out.hex().upper()


def test_reference_packer_matches_the_known_vector() -> None:
    # The USSD "*100#" as Huawei sticks want it, quoted widely in their AT examples.
    assert pack7("*100#") == "AA180C3602"


def test_at_least_three_families() -> None:
    assert {"simcom_sim800", "simcom_sim7600", "quectel_ec25", "huawei_e3372"} <= set(PERSONALITIES)
    for p in PERSONALITIES.values():
        assert p.manufacturer and p.model and p.revision
        assert p.boot_urcs or p.key == "wavecom_fastrack"  # no Wavecom boot URCs are modelled


async def test_quectel_ec25(network: Network) -> None:
    async with rig(network, personality=PERSONALITIES["quectel_ec25"],
                   storage_capacity={"SM": 1, "ME": 5}) as r:
        await asyncio.sleep(0.02)
        boot = await r.client.read_until(b"+QIND: PB DONE\r\n")
        assert lines_of(boot.decode()) == ["RDY", "+CFUN: 1", "+CPIN: READY", "+QUSIM: 1",
                                           "+QIND: SMS DONE", "+QIND: PB DONE"]
        await r.client.cmd("ATE0")
        c = r.client
        assert lines_of(await c.cmd("AT+CGMI;+CGMM;+CGMR")) == ["Quectel", "EC25", "EC25EFAR06A06M4G", "OK"]
        assert lines_of(await c.cmd("AT+QCCID")) == [f"+QCCID: {r.modem.iccid}", "OK"]
        assert await c.cmd("AT+CIMI=1") == "\r\nERROR\r\n"
        assert await c.cmd("AT+QCFG=\"urc/ri/smsincoming\",\"pulse\"") == "\r\nOK\r\n"
        assert lines_of(await c.cmd("AT+COPS?")) == ['+COPS: 0,0,"Emulated Mobile",7', "OK"]
        assert lines_of(await c.cmd("AT+CEREG?")) == ["+CEREG: 0,1", "OK"]
        # CMEE defaults to 1: numeric codes out of the box.
        assert await c.cmd("AT+CMGR=9") == "\r\n+CMS ERROR: 321\r\n"
        # Indices count from 0; a full store raises +QIND: "smsfull".
        r.modem.inject_sms("+447700900123", "first")
        assert await c.read_until(b'+CMTI: "SM",0\r\n')
        r.modem.inject_sms("+447700900123", "second")
        assert await c.read_until(b'+QIND: "smsfull","SM"\r\n')


async def test_simcom_sim7600(network: Network) -> None:
    async with rig(network, personality=PERSONALITIES["simcom_sim7600"]) as r:
        boot = await r.client.read_until(b"PB DONE\r\n")
        assert lines_of(boot.decode()) == ["RDY", "+CPIN: READY", "SMS DONE", "PB DONE"]
        await r.client.cmd("ATE0")
        c = r.client
        assert lines_of(await c.cmd("AT+CGMR")) == ["+CGMR: LE20B04SIM7600M22", "OK"]
        assert lines_of(await c.cmd("AT+CICCID")) == [f"+ICCID: {r.modem.iccid}", "OK"]
        assert await c.cmd("AT+CCID") == "\r\nERROR\r\n"
        ati = lines_of(await c.cmd("ATI"))
        assert ati[0] == "Manufacturer: SIMCOM INCORPORATED" and f"IMEI: {r.modem.imei}" in ati


async def test_huawei_e3372_noise_curc_and_ussd(network: Network) -> None:
    noisy = dataclasses.replace(PERSONALITIES["huawei_e3372"], periodic_urc_interval_s=0.03)
    async with rig(network, personality=noisy, behaviour=Behaviour(rssi=23)) as r:
        boot = await r.client.read_until(b"^SIMST: 1\r\n")
        assert lines_of(boot.decode()) == ["^SYSSTART", "^SIMST: 1"]
        noise = await r.client.read_until(re.compile(rb"\^RSSI: 23\r\n"))
        assert noise.endswith(b"\r\n^RSSI: 23\r\n")
        await r.client.cmd("ATE0;^CURC=0")
        await r.client.quiet(0.05)  # a burst may have been on its way
        assert b"^RSSI" not in await r.client.quiet(0.1)
        c = r.client
        assert lines_of(await c.cmd("AT^CURC?")) == ["^CURC: 0", "OK"]
        # USSD strings travel as packed GSM 7-bit hex on Huawei sticks.
        assert lines_of(await c.cmd(f'AT+CUSD=1,"{pack7("*100#")}",15')) == ["OK"]
        reply = (await c.read_until(re.compile(rb"\+CUSD: [^\r]*\r\n"))).decode()
        expected = pack7("Your balance is 12.34 EUR. Valid until 31.12.2027.")
        assert lines_of(reply) == [f'+CUSD: 0,"{expected}",15']
        # Huawei answers an empty slot with an error where SIMCom says OK.
        await c.cmd("AT+CMEE=1")
        assert await c.cmd("AT+CMGR=3") == "\r\n+CMS ERROR: 321\r\n"


async def test_huawei_iccid_read_form(network: Network) -> None:
    async with rig(network, personality=PERSONALITIES["huawei_e3372"]) as r:
        await r.ready()
        assert lines_of(await r.client.cmd("AT^ICCID?")) == [f"^ICCID: {r.modem.iccid}", "OK"]


async def test_huawei_noise_does_not_multiply_after_a_reset(network: Network) -> None:
    noisy = dataclasses.replace(PERSONALITIES["huawei_e3372"], periodic_urc_interval_s=0.05)
    async with rig(network, personality=noisy) as r:
        await r.ready()
        for _ in range(3):
            await r.client.cmd("ATE0;+CFUN=1,1")
            await r.client.read_until(b"^SIMST: 1\r\n")
        await r.client.quiet(0.01)
        burst = await r.client.quiet(0.24)
        # One ^RSSI per interval (about 4-5 in 0.24 s), not one per boot.
        assert 3 <= burst.count(b"^RSSI") <= 6, burst
