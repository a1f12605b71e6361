"""Wire habits of real modules a driver must tolerate (issue 16), over a real pty."""

from __future__ import annotations

import asyncio
import re

import pytest

from gsmgw.emulator import PERSONALITIES, Behaviour, Network
from gsmgw.emulator.personality import QUIRKS, with_quirks
from gsmgw.sms import encode_submit
from tests.emulator.emu_client import lines_of, rig

pytestmark = pytest.mark.timeout(10)


async def test_wavecom_cpin_answer_has_no_final_result(network: Network) -> None:
    async with rig(network, personality=PERSONALITIES["wavecom_fastrack"]) as r:
        await r.ready()
        c = r.client
        c.write(b"AT+CPIN?\r")
        assert await c.read_until(b"+CPIN: READY\r\n") == b"\r\n+CPIN: READY\r\n"
        assert await c.quiet(0.1) == b""  # no OK follows, ever
        # The module is not wedged: the next command is answered as usual.
        assert lines_of(await c.cmd("AT+CSQ")) == ["+CSQ: 20,99", "OK"]
        # Identification strings keep their blanks (gammu tests/at-model/01.dump).
        assert await c.cmd("AT+CGMM") == "\r\n  MULTIBAND  900E  1800 \r\n\r\nOK\r\n"


async def test_sim800_refuses_sms_commands_until_sms_ready(network: Network) -> None:
    behaviour = Behaviour(sms_ready_delay_s=0.4)
    async with rig(network, personality=PERSONALITIES["simcom_sim800"], behaviour=behaviour) as r:
        c = r.client
        boot = await c.read_until(b"Call Ready\r\n")
        assert lines_of(boot.decode()) == ["RDY", "+CFUN: 1", "+CPIN: READY", "Call Ready"]
        await c.cmd("ATE0")
        assert await c.cmd("AT+CMEE=1") == "\r\nOK\r\n"  # not an SMS command
        assert await c.cmd("AT+CMGF=0") == "\r\nERROR\r\n"  # plain ERROR despite CMEE=1
        assert await c.cmd("AT+CPMS?") == "\r\nERROR\r\n"
        await c.read_until(b"\r\nSMS Ready\r\n", timeout_s=2.0)
        assert await c.cmd("AT+CMGF=0") == "\r\nOK\r\n"
        # Every boot starts over: AT+CFUN=1,1 brings the window back.
        assert await c.cmd("AT+CFUN=1,1") == "\r\nOK\r\n"
        await c.read_until(b"Call Ready\r\n")
        await c.cmd("ATE0")
        assert await c.cmd("AT+CMGL=4") == "\r\nERROR\r\n"
        await c.read_until(b"SMS Ready\r\n", timeout_s=2.0)


async def test_huawei_urc_storm_between_response_and_ok_and_before_prompt(network: Network) -> None:
    async with rig(network, personality=PERSONALITIES["huawei_e1550"]) as r:
        await r.ready()
        c = r.client
        answer = lines_of(await c.cmd("AT+CSQ"))
        assert answer[0] == "+CSQ: 20,99" and answer[-1] == "OK"
        assert [line.split(":")[0] for line in answer[1:-1]] == ["^RSSI", "^MODE", "^DSFLOWRPT"]
        sms = encode_submit("+15550000002", "storm").parts[0]
        c.write(f"AT+CMGS={sms.tpdu_length}\r".encode())
        before_prompt = await c.read_until(b"\r\n> ")
        assert re.findall(rb"\^(RSSI|MODE|DSFLOWRPT)", before_prompt) == [b"RSSI", b"MODE", b"DSFLOWRPT"]
        c.write(sms.pdu.encode() + b"\x1a")
        after = lines_of((await c.read_until(b"\r\nOK\r\n")).decode())
        assert after[0] == "+CMGS: 0" and len(after) == 5


async def test_command_not_support(network: Network) -> None:
    async with rig(network, personality=PERSONALITIES["huawei_e1550"], behaviour=Behaviour(urc_storm=0)) as r:
        await r.ready()
        r.client.write(b"AT+CPINR\r")
        assert await r.client.read_until(b"SUPPORT\r\n") == b"\r\nCOMMAND NOT SUPPORT\r\n"
        assert await r.client.cmd("ATV1") == "\r\nOK\r\n"  # basic commands are unaffected


async def test_first_read_after_cmti_fails_with_321_then_works(network: Network) -> None:
    async with rig(network, behaviour=Behaviour(transient_read_error=321)) as r:
        await r.ready()
        c = r.client
        await c.cmd("AT+CMGF=0")
        r.modem.inject_sms("+15559990001", "hello")
        cmti = await c.read_until(re.compile(rb'\+CMTI: "SM",(\d+)\r\n'))
        index = int(re.search(rb",(\d+)", cmti).group(1))  # type: ignore[union-attr]
        assert await c.cmd(f"AT+CMGR={index}") == "\r\n+CMS ERROR: 321\r\n"
        second = lines_of(await c.cmd(f"AT+CMGR={index}"))
        assert second[0].startswith("+CMGR: 0,,") and second[-1] == "OK"


@pytest.mark.parametrize("quirk", sorted(QUIRKS))
def test_every_quirk_changes_the_personality(quirk: str) -> None:
    base = PERSONALITIES["simcom_sim800"]
    changed = with_quirks(base, [quirk])
    assert changed != base and changed.key == f"simcom_sim800+{quirk}"


def test_unknown_quirk_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown quirk 'nope'"):
        with_quirks(PERSONALITIES["simcom_sim800"], ["nope"])


async def test_crcrlf_lower_hex_and_padded_identification(network: Network) -> None:
    personality = with_quirks(PERSONALITIES["quectel_ec25"], ["crcrlf", "lower-hex", "ident-spaces"])
    async with rig(network, personality=personality) as r:
        await asyncio.sleep(0.05)
        c = r.client
        c.write(b"ATE0\r")
        await c.read_until(b"\r\r\nOK\r\r\n")
        c.write(b"AT+CGMI\r")
        assert await c.read_until(b"OK\r\r\n") == b"\r\r\n  Quectel\r\r\n\r\r\nOK\r\r\n"
        c.write(b"AT+CMGF=0\r")
        await c.read_until(b"OK\r\r\n")
        r.modem.inject_sms("+15559990001", "lower case")
        await c.read_until(b"+CMTI:")
        c.buf.clear()
        c.write(b"AT+CMGL=4\r")
        listing = (await c.read_until(b"OK\r\r\n")).decode()
        pdu = next(ln for ln in listing.split("\r\r\n") if ln and not ln.startswith(("+", "OK")))
        assert pdu == pdu.lower() and re.fullmatch(r"[0-9a-f]+", pdu)
        sms = encode_submit("+15550000009", "x").parts[0]
        c.write(f"AT+CMGS={sms.tpdu_length}\r".encode())
        await c.read_until(b"\r\r\n> ")
        c.write(sms.pdu.encode() + b"\x1a")
        assert await c.read_until(b"OK\r\r\n") == b"\r\r\n+CMGS: 0\r\r\n\r\r\nOK\r\r\n"
