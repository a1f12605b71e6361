"""The AT interpreter over a real pty: V.250 basics, identity, SIM, registration, settings."""

from __future__ import annotations

import asyncio

import pytest

from gsmgw.emulator import Behaviour, EmulatedModem, Network, PtyModem
from tests.emulator.emu_client import PtyClient, lines_of, rig

pytestmark = pytest.mark.timeout(10)


async def test_echo_is_on_at_start_and_ate0_turns_it_off(network: Network) -> None:
    async with rig(network) as r:
        await asyncio.sleep(0.02)
        r.client.buf.clear()
        assert await r.client.cmd("AT") == "AT\r\r\nOK\r\n"
        assert await r.client.cmd("ATE0") == "ATE0\r\r\nOK\r\n"
        assert await r.client.cmd("AT") == "\r\nOK\r\n"
        assert await r.client.cmd("ATE1") == "\r\nOK\r\n"
        assert await r.client.cmd("AT") == "AT\r\r\nOK\r\n"


async def test_atz_restores_the_profile(network: Network) -> None:
    async with rig(network) as r:
        await r.ready()
        await r.client.cmd("AT+CMEE=2;+CMGF=1")
        assert await r.client.cmd("ATZ") == "\r\nOK\r\n"
        # ATZ brings echo back on and CMEE/CMGF to their defaults.
        assert await r.client.cmd("AT+CMEE?") == "AT+CMEE?\r\r\n+CMEE: 0\r\n\r\nOK\r\n"
        assert "+CMGF: 0" in await r.client.cmd("AT+CMGF?")


async def test_unknown_command_is_error_and_stops_the_line(network: Network) -> None:
    async with rig(network) as r:
        await r.ready()
        assert await r.client.cmd("AT+CPBS?") == "\r\nERROR\r\n"
        assert await r.client.cmd("AT^CURC=0") == "\r\nERROR\r\n"  # not a SIMCom command
        # Hayes: the line stops at the first error, later commands are not run.
        assert await r.client.cmd("AT+CMGF=1;+BOGUS;+CMEE=2") == "\r\nERROR\r\n"
        assert "+CMGF: 1" in await r.client.cmd("AT+CMGF?")
        assert "+CMEE: 0" in await r.client.cmd("AT+CMEE?")
        assert await r.client.cmd("AT+CMGF=7") == "\r\nERROR\r\n"


async def test_several_commands_on_one_line(network: Network) -> None:
    async with rig(network) as r:
        await r.ready()
        out = await r.client.cmd("AT+CMGF=0;+CNMI=2,1,0,2,0;+CGMI;+CNMI?")
        assert lines_of(out) == ["SIMCOM_Ltd", "+CNMI: 2,1,0,2,0", "OK"]
        out = await r.client.cmd("ATE0V1;+CMEE=1")
        assert lines_of(out) == ["OK"]
        assert lines_of(await r.client.cmd('AT+CSCS="GSM";+CSCS?')) == ['+CSCS: "GSM"', "OK"]


async def test_a_slash_repeats_the_last_line(network: Network) -> None:
    async with rig(network) as r:
        await r.ready()
        await r.client.cmd("AT+CGMM")
        r.client.write(b"A/")
        out = (await r.client.read_until(b"OK\r\n")).decode()
        assert lines_of(out) == ["SIMCOM_SIM800", "OK"]


async def test_garbage_before_at_and_backspace(network: Network) -> None:
    async with rig(network) as r:
        await r.ready()
        assert lines_of(await r.client.cmd("\x00\xffxyAT+CGMX\x08I")) == ["SIMCOM_Ltd", "OK"]
        r.client.write(b"hello\r")  # not a command line: ignored, no answer
        assert await r.client.quiet(0.05) == b""


async def test_v0_numeric_results(network: Network) -> None:
    async with rig(network) as r:
        await r.ready()
        r.client.write(b"ATV0\r")
        assert await r.client.read_until(b"0\r") == b"0\r"
        r.client.write(b"AT+BOGUS\r")
        assert await r.client.read_until(b"4\r") == b"4\r"
        r.client.write(b"ATV1\r")
        assert await r.client.read_until(b"\r\nOK\r\n") == b"\r\nOK\r\n"


async def test_identity_commands(network: Network) -> None:
    async with rig(network, number="+15550000007", imei="490154203237518", iccid="8944500102198304826",
                   imsi="001019876543210") as r:
        await r.ready()
        c = r.client
        assert lines_of(await c.cmd("AT+CGMI")) == ["SIMCOM_Ltd", "OK"]
        assert lines_of(await c.cmd("AT+CGMM")) == ["SIMCOM_SIM800", "OK"]
        assert lines_of(await c.cmd("AT+CGMR")) == ["Revision:1418B04SIM800C24", "OK"]
        assert lines_of(await c.cmd("AT+CGSN")) == ["490154203237518", "OK"]
        assert lines_of(await c.cmd("AT+GSN")) == ["490154203237518", "OK"]
        assert lines_of(await c.cmd("AT+CIMI")) == ["001019876543210", "OK"]
        assert lines_of(await c.cmd("AT+CCID")) == ["8944500102198304826", "OK"]
        assert lines_of(await c.cmd("AT+CNUM")) == ['+CNUM: "","+15550000007",145', "OK"]
        assert lines_of(await c.cmd("ATI")) == ["SIM800 R14.18", "OK"]


def test_generated_identities_are_valid_and_distinct() -> None:
    from gsmgw.emulator.modem import luhn_complete

    net = Network()
    a = EmulatedModem(network=net, number="+15550000001")
    b = EmulatedModem(network=net, number="+15550000002")
    for m in (a, b):
        assert len(m.imei) == 15 and luhn_complete(m.imei[:-1]) == m.imei
        assert len(m.iccid) == 19 and m.iccid.startswith("89") and luhn_complete(m.iccid[:-1]) == m.iccid
        assert len(m.imsi) == 15 and m.imsi.startswith("00101")
    assert len({a.imei, b.imei}) == 2 and len({a.iccid, b.iccid}) == 2 and len({a.imsi, b.imsi}) == 2
    with pytest.raises(ValueError, match="already used"):
        EmulatedModem(network=net, number="+15550000001")
    with pytest.raises(ValueError, match=r"E\.164"):
        EmulatedModem(network=net, number="not a number")
    with pytest.raises(ValueError, match="pin"):
        EmulatedModem(network=net, number="+15550000003", pin="12")
    with pytest.raises(ValueError, match="storage 'XX'"):
        EmulatedModem(network=net, number="+15550000004", storage_capacity={"XX": 3})


async def test_cmee_numeric_verbose_and_plain(network: Network) -> None:
    async with rig(network, pin="1234") as r:
        await r.ready()
        c = r.client
        assert await c.cmd("AT+CIMI") == "\r\nERROR\r\n"  # CMEE=0: plain ERROR
        await c.cmd("AT+CMEE=1")
        assert await c.cmd("AT+CIMI") == "\r\n+CME ERROR: 11\r\n"
        await c.cmd("AT+CMEE=2")
        assert await c.cmd("AT+CIMI") == "\r\n+CME ERROR: SIM PIN required\r\n"
        assert await c.cmd("AT+CMGL=4") == "\r\n+CMS ERROR: SIM PIN required\r\n"
        await c.cmd("AT+CMEE=1")
        assert await c.cmd("AT+CMGL=4") == "\r\n+CMS ERROR: 311\r\n"
        assert lines_of(await c.cmd("AT+CMEE=?")) == ["+CMEE: (0-2)", "OK"]


async def test_pin_then_registration_urcs(network: Network) -> None:
    async with rig(network, pin="1234", behaviour=Behaviour(registration_delay_s=0.02)) as r:
        await r.ready()
        c = r.client
        await c.cmd("AT+CMEE=1;+CREG=1")
        assert lines_of(await c.cmd("AT+CPIN?")) == ["+CPIN: SIM PIN", "OK"]
        assert lines_of(await c.cmd("AT+CREG?")) == ["+CREG: 1,0", "OK"]
        assert await c.cmd('AT+CPIN="0000"') == "\r\n+CME ERROR: 16\r\n"
        assert lines_of(await c.cmd('AT+CPIN="1234"')) == ["OK"]
        urcs = (await c.read_until(b"+CREG: 1\r\n")).decode()
        # SIM800: +CPIN: READY, Call Ready, SMS Ready after the PIN; then registration.
        assert lines_of(urcs) == ["+CPIN: READY", "Call Ready", "SMS Ready", "+CREG: 2", "+CREG: 1"]
        assert lines_of(await c.cmd("AT+CPIN?")) == ["+CPIN: READY", "OK"]
        assert await c.cmd('AT+CPIN="1234"') == "\r\n+CME ERROR: 3\r\n"


async def test_three_wrong_pins_lock_to_puk_and_puk_unlocks(network: Network) -> None:
    async with rig(network, pin="1234", puk="87654321") as r:
        await r.ready()
        c = r.client
        await c.cmd("AT+CMEE=1")
        for _ in range(2):
            assert await c.cmd('AT+CPIN="1111"') == "\r\n+CME ERROR: 16\r\n"
        out = await c.cmd('AT+CPIN="1111"')
        assert out == "\r\n+CPIN: SIM PUK\r\n\r\n+CME ERROR: 16\r\n"
        assert lines_of(await c.cmd("AT+CPIN?")) == ["+CPIN: SIM PUK", "OK"]
        assert await c.cmd("AT+CIMI") == "\r\n+CME ERROR: 12\r\n"
        assert await c.cmd('AT+CPIN="1234"') == "\r\n+CME ERROR: 12\r\n"  # PIN alone is not enough
        assert await c.cmd('AT+CPIN="00000000","4321"') == "\r\n+CME ERROR: 16\r\n"
        assert lines_of(await c.cmd('AT+CPIN="87654321","4321"'))[-1] == "OK"
        assert r.modem.pin == "4321"
        await asyncio.sleep(0.02)
        assert "+CPIN: READY" in await c.cmd("AT+CPIN?")


async def test_csq_creg_cops_when_registered_and_not(network: Network) -> None:
    async with rig(network, behaviour=Behaviour(rssi=17)) as r:
        await r.ready()
        c = r.client
        assert lines_of(await c.cmd("AT+CSQ")) == ["+CSQ: 17,99", "OK"]
        assert lines_of(await c.cmd("AT+CREG=2;+CREG?")) == ['+CREG: 2,1,"1A2B","00C0FFEE"', "OK"]
        assert lines_of(await c.cmd("AT+COPS?")) == ['+COPS: 0,0,"Emulated Mobile"', "OK"]
        assert lines_of(await c.cmd("AT+COPS=3,2;+COPS?")) == ['+COPS: 0,2,"00101"', "OK"]
        assert "+COPS: (2," in await c.cmd("AT+COPS=?")
    async with rig(network, number="+15550000002", behaviour=Behaviour(registration=0)) as r:
        await r.ready()
        c = r.client
        assert lines_of(await c.cmd("AT+CSQ")) == ["+CSQ: 99,99", "OK"]
        assert lines_of(await c.cmd("AT+CREG?")) == ["+CREG: 0,0", "OK"]
        assert lines_of(await c.cmd("AT+COPS?")) == ["+COPS: 0", "OK"]


async def test_csca_cmgf_csms(network: Network) -> None:
    async with rig(network) as r:
        await r.ready()
        c = r.client
        assert lines_of(await c.cmd("AT+CSCA?")) == ['+CSCA: "+15550009999",145', "OK"]
        assert lines_of(await c.cmd('AT+CSCA="+447785016005";+CSCA?')) == ['+CSCA: "+447785016005",145', "OK"]
        await c.cmd("AT+CMEE=1")
        assert await c.cmd('AT+CSCA="abc"') == "\r\n+CMS ERROR: 304\r\n"
        assert lines_of(await c.cmd("AT+CMGF=?")) == ["+CMGF: (0,1)", "OK"]
        assert lines_of(await c.cmd("AT+CSMS=1")) == ["+CSMS: 1,1,1", "OK"]
        assert lines_of(await c.cmd("AT+CSMS?")) == ["+CSMS: 1,1,1,1", "OK"]


async def test_cfun_modes_and_reset(network: Network) -> None:
    async with rig(network) as r:
        await r.ready()
        c = r.client
        await c.cmd("AT+CREG=1")
        assert lines_of(await c.cmd("AT+CFUN?")) == ["+CFUN: 1", "OK"]
        assert lines_of(await c.cmd("AT+CFUN=4")) == ["OK"]
        # URCs raised by a command come after its final result, never inside it.
        assert await c.read_until(b"\r\n+CREG: 0\r\n") == b"\r\n+CREG: 0\r\n"
        assert lines_of(await c.cmd("AT+CFUN?")) == ["+CFUN: 4", "OK"]
        assert lines_of(await c.cmd("AT+CSQ")) == ["+CSQ: 99,99", "OK"]
        assert lines_of(await c.cmd("AT+CFUN=1")) == ["OK"]
        assert b"+CREG: 1" in await c.read_until(b"+CREG: 1\r\n")
        assert lines_of(await c.cmd("AT+CFUN=0;+CFUN?")) == ["+CFUN: 0", "OK"]
        assert b"+CREG: 0" in await c.read_until(b"+CREG: 0\r\n")
        assert lines_of(await c.cmd("AT+COPS?")) == ["+COPS: 0", "OK"]
        assert lines_of(await c.cmd("AT+CFUN=1")) == ["OK"]
        assert b"+CREG: 1" in await c.read_until(b"+CREG: 1\r\n")
        await c.cmd("AT+CMEE=2")
        assert await c.cmd("AT+CFUN=2") == "\r\n+CME ERROR: operation not supported\r\n"
        # Reset: OK, then the module reboots: boot URCs again, settings back to defaults.
        assert lines_of(await c.cmd("AT+CFUN=1,1")) == ["OK"]
        boot = (await c.read_until(b"SMS Ready\r\n")).decode()
        assert lines_of(boot) == ["+CREG: 0", "RDY", "+CFUN: 1", "+CPIN: READY", "Call Ready", "SMS Ready"]
        assert await c.cmd("AT") == "AT\r\r\nOK\r\n"  # echo is on again after the reset
        assert "+CMEE: 0" in await c.cmd("AT+CMEE?")


async def test_cpms_capacities_and_unknown_memory(network: Network) -> None:
    async with rig(network, storage_capacity={"SM": 25, "ME": 35}) as r:
        await r.ready()
        c = r.client
        assert lines_of(await c.cmd("AT+CPMS=?")) == ['+CPMS: ("SM","ME"),("SM","ME"),("SM","ME")', "OK"]
        assert lines_of(await c.cmd("AT+CPMS?")) == ['+CPMS: "SM",0,25,"SM",0,25,"SM",0,25', "OK"]
        assert lines_of(await c.cmd('AT+CPMS="ME","ME","ME"')) == ["+CPMS: 0,35,0,35,0,35", "OK"]
        assert lines_of(await c.cmd('AT+CPMS="SM"')) == ["+CPMS: 0,25,0,35,0,35", "OK"]
        await c.cmd("AT+CMEE=1")
        assert await c.cmd('AT+CPMS="XX"') == "\r\n+CMS ERROR: 302\r\n"


async def test_pty_unplug_gives_eof_and_replug_gets_a_new_tty(network: Network, tmp_path) -> None:
    modem = EmulatedModem(network=network, number="+15550000001")
    link = tmp_path / "ttyGSM0"
    async with PtyModem(modem, link) as pm:
        assert pm.path == link and link.is_symlink()
        client = PtyClient(pm.path)
        await asyncio.sleep(0.02)
        assert "OK" in await client.cmd("AT")
        await pm.unplug()
        with pytest.raises(EOFError):
            await client.read_until(b"never", timeout_s=1.0)
        client.close()
        assert not link.exists()
        await pm.replug()
        assert link.is_symlink()
        client = PtyClient(pm.path)
        boot = await client.read_until(b"SMS Ready\r\n")
        assert b"RDY" in boot
        assert "OK" in await client.cmd("AT")
        client.close()
    await modem.aclose()


async def test_plain_settings_are_kept(network: Network) -> None:
    async with rig(network) as r:
        await r.ready()
        c = r.client
        assert lines_of(await c.cmd("AT+IPR?")) == ["+IPR: 115200", "OK"]
        assert lines_of(await c.cmd("AT+IPR=57600;+IPR?")) == ["+IPR: 57600", "OK"]
        assert lines_of(await c.cmd("AT+CSDH=1;+CSDH?")) == ["+CSDH: 1", "OK"]
        assert await c.cmd('AT+IFC="x"') == "\r\nERROR\r\n"
        assert lines_of(await c.cmd("AT&W;&C1;&D2")) == ["OK"]
        assert lines_of(await c.cmd("ATS3?")) == ["013", "OK"]
