"""Behaviours and faults (design.md §9), each observed from a client on the real pty."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from gsmgw.emulator import Behaviour, EmulatedModem, Network, PtyModem
from tests.emulator.emu_client import FINAL_RE, PtyClient, lines_of, rig, submit

pytestmark = pytest.mark.timeout(10)

HAND_SUBMIT = "0011000B915155000000F20000AA05E8329BFD06"
LEN = 19


async def test_send_latency_fixed_and_distribution(network: Network) -> None:
    async with rig(network, behaviour=Behaviour(send_latency_s=0.15)) as r:
        await r.ready()
        t0 = time.monotonic()
        assert "+CMGS: 0" in await submit(r.client, HAND_SUBMIT, LEN)
        assert time.monotonic() - t0 >= 0.15
        r.modem.behaviour.send_latency_distribution = lambda rng: rng.expovariate(1 / 0.01)
        samples = [r.modem.behaviour.submit_latency_s(r.modem.rng) for _ in range(500)]
        assert 0.005 < sum(samples) / len(samples) < 0.02
        r.modem.behaviour.send_latency_distribution = None
        r.modem.behaviour.send_latency_s = 0.0
        r.modem.behaviour.send_latency_jitter_s = 0.05
        samples = [r.modem.behaviour.submit_latency_s(r.modem.rng) for _ in range(200)]
        assert min(samples) >= 0.0 and max(samples) <= 0.05 and len(set(samples)) > 100


async def test_urc_arrives_during_send_latency(network: Network) -> None:
    async with rig(network, behaviour=Behaviour(send_latency_s=0.2)) as r:
        await r.ready()
        r.client.write(f"AT+CMGS={LEN}\r".encode())
        await r.client.read_until(b"> ")
        r.client.write(HAND_SUBMIT.encode() + b"\x1a")
        await asyncio.sleep(0.05)
        r.modem.inject_sms("+447700900123", "meanwhile")
        out = (await r.client.read_until(FINAL_RE)).decode()
        # The radio round trip does not block the URC: it comes before +CMGS.
        assert lines_of(out) == ['+CMTI: "SM",1', "+CMGS: 0", "OK"]


async def test_cms_error_on_submit_first_n_only(network: Network) -> None:
    async with rig(network, behaviour=Behaviour(cms_error_on_submit=500, cms_error_first_n=2)) as r:
        await r.ready()
        await r.client.cmd("AT+CMEE=1")
        answers = [await submit(r.client, HAND_SUBMIT, LEN) for _ in range(3)]
        assert answers[:2] == ["\r\n+CMS ERROR: 500\r\n"] * 2
        assert lines_of(answers[2]) == ["+CMGS: 0", "OK"]  # refused submits used no TP-MR
        assert len(r.modem.sent) == 1
        r.modem.behaviour.cms_error_on_submit = 21
        r.modem.behaviour.cms_error_first_n = None
        await r.client.cmd("AT+CMEE=2")
        assert await submit(r.client, HAND_SUBMIT, LEN) == "\r\n+CMS ERROR: Short message transfer rejected\r\n"


async def test_hang_on_submit_gives_no_final_result_then_recovers(network: Network) -> None:
    async with rig(network, behaviour=Behaviour(hang_on_submit=True)) as r:
        await r.ready()
        r.client.write(f"AT+CMGS={LEN}\r".encode())
        await r.client.read_until(b"> ")
        r.client.write(HAND_SUBMIT.encode() + b"\x1a")
        assert await r.client.quiet(0.2) == b""
        assert r.modem.sent == []
        r.modem.behaviour.hang_on_submit = False
        assert lines_of(await r.client.cmd("AT")) == ["OK"]
        assert "+CMGS: 0" in await submit(r.client, HAND_SUBMIT, LEN)


async def test_hang_after_sending_loses_only_the_answer(network: Network) -> None:
    async with rig(network, behaviour=Behaviour(hang_on_submit=True, hang_after_sending=True)) as r, \
            rig(network, number="+15550000002") as b:
        await r.ready()
        await b.ready()
        r.client.write(f"AT+CMGS={LEN}\r".encode())
        await r.client.read_until(b"> ")
        r.client.write(HAND_SUBMIT.encode() + b"\x1a")
        assert await r.client.quiet(0.1) == b""
        assert [s.tp_mr for s in r.modem.sent] == [0]  # it went out with TP-MR 0
        await network.drain()
        assert b.modem.storages["SM"].used == 1
        r.modem.behaviour.hang_on_submit = False
        assert "+CMGS: 1" in await submit(r.client, HAND_SUBMIT, LEN)


async def test_drop_port_on_submit_and_replug(network: Network, tmp_path) -> None:
    modem = EmulatedModem(network=network, number="+15550000001",
                          behaviour=Behaviour(drop_port_on_submit=True, replug_after_s=0.05))
    link = tmp_path / "ttyGSM0"
    async with PtyModem(modem, link) as pm:
        client = PtyClient(pm.path)
        first_tty = pm.slave_path
        await asyncio.sleep(0.02)
        await client.cmd("ATE0")
        client.write(f"AT+CMGS={LEN}\r".encode())
        await client.read_until(b"> ")
        client.write(HAND_SUBMIT.encode() + b"\x1a")
        with pytest.raises(EOFError) as info:
            await client.read_until(b"OK", timeout_s=2.0)
        assert b"+CMGS" not in info.value.args[0]
        client.close()
        await pm.wait_plugged(timeout_s=2.0)
        assert link.is_symlink() and pm.slave_path is not None
        client = PtyClient(pm.path)
        assert b"SMS Ready" in await client.read_until(b"SMS Ready\r\n")
        modem.behaviour.drop_port_on_submit = False
        assert "OK" in await client.cmd("AT")
        client.close()
        assert first_tty is not None
    await modem.aclose()


async def test_drop_port_mid_command_sends_half_an_answer(network: Network) -> None:
    async with rig(network, behaviour=Behaviour(drop_port_on_command="+CGMI")) as r:
        await r.ready()
        r.client.write(b"AT+CGMI\r")
        with pytest.raises(EOFError) as info:
            await r.client.read_until(b"OK", timeout_s=2.0)
        assert info.value.args[0] == b"\r\nSIMCO"
        assert not r.pm.plugged


async def test_garbage_before_responses(network: Network) -> None:
    async with rig(network, behaviour=Behaviour(garbage_before_response=b"\xff\x00\xfe")) as r:
        await r.ready()
        assert await r.client.cmd("AT") == "\xff\x00\xfe\r\nOK\r\n"


async def test_urc_in_the_middle_of_a_response(network: Network) -> None:
    async with rig(network, behaviour=Behaviour(urc_in_response="+CSQN: 22,0")) as r:
        await r.ready()
        for i in range(2):
            r.modem.inject_sms("+447700900123", f"m{i}")
        await r.client.quiet(0.05)
        listing = lines_of(await r.client.cmd("AT+CMGL=4"))
        assert [ln[:9] for ln in listing] == [
            "+CMGL: 1,", listing[1][:9], "+CSQN: 22", "+CMGL: 2,", listing[4][:9], "OK"]
        # With a single information line the URC lands between it and the final result.
        assert lines_of(await r.client.cmd("AT+CSQ")) == ["+CSQ: 20,99", "+CSQN: 22,0", "OK"]


async def test_urc_between_prompt_and_pdu(network: Network) -> None:
    async with rig(network, behaviour=Behaviour(urc_after_prompt='+CMTI: "SM",3')) as r:
        await r.ready()
        r.client.write(f"AT+CMGS={LEN}\r".encode())
        out = await r.client.read_until(b'+CMTI: "SM",3\r\n')
        assert out == b'\r\n> \r\n+CMTI: "SM",3\r\n'
        r.client.write(HAND_SUBMIT.encode() + b"\x1a")
        assert "+CMGS: 0" in (await r.client.read_until(FINAL_RE)).decode()


async def test_trickled_output_arrives_one_byte_at_a_time(network: Network) -> None:
    async with rig(network, behaviour=Behaviour(trickle_s=0.002)) as r:
        await r.ready()
        chunks: list[bytes] = []
        fd = r.client.fd
        loop = asyncio.get_running_loop()
        loop.remove_reader(fd)
        import os

        os.write(fd, b"AT+CGMI\r")
        t0 = time.monotonic()
        async with asyncio.timeout(3):
            while b"".join(chunks).count(b"OK\r\n") < 1:
                await asyncio.sleep(0.001)
                try:
                    chunks.append(os.read(fd, 4096))
                except BlockingIOError:
                    pass
        data = b"".join(chunks)
        assert data == b"\r\nSIMCOM_Ltd\r\n\r\nOK\r\n"
        assert time.monotonic() - t0 >= 0.002 * (len(data) - 1)
        assert len(chunks) >= len(data) // 2  # nowhere near one chunk
        loop.add_reader(fd, r.client._readable)


async def test_echo_off_from_behaviour(network: Network) -> None:
    async with rig(network, behaviour=Behaviour(echo=False)) as r:
        await asyncio.sleep(0.02)
        r.client.buf.clear()
        assert await r.client.cmd("AT") == "\r\nOK\r\n"


async def test_no_network_registration(network: Network) -> None:
    async with rig(network, behaviour=Behaviour(registration=3)) as r:
        await r.ready()
        assert lines_of(await r.client.cmd("AT+CREG?")) == ["+CREG: 0,3", "OK"]
        await r.client.cmd("AT+CMEE=1")
        assert await submit(r.client, HAND_SUBMIT, LEN) == "\r\n+CMS ERROR: 331\r\n"
        assert await r.client.cmd('AT+CUSD=1,"*100#",15') == "\r\n+CME ERROR: 30\r\n"


async def test_inbound_waits_while_unregistered(network: Network) -> None:
    async with rig(network, behaviour=Behaviour(registration=0)) as r:
        await r.ready()
        r.modem.inject_sms("+447700900123", "stored in the SC")
        assert r.modem.storages["SM"].used == 0
        r.modem.behaviour.registration = 1
        await r.client.cmd("AT+CFUN=1")
        await r.client.read_until(re.compile(rb'\+CMTI: "SM",1'))
        assert r.modem.storages["SM"].used == 1


async def test_behaviour_changes_at_run_time(network: Network) -> None:
    async with rig(network) as r:
        await r.ready()
        assert "+CMGS: 0" in await submit(r.client, HAND_SUBMIT, LEN)
        r.modem.behaviour.cms_error_on_submit = 42
        await r.client.cmd("AT+CMEE=1")
        assert await submit(r.client, HAND_SUBMIT, LEN) == "\r\n+CMS ERROR: 42\r\n"


async def test_coverage_lost_and_back_at_run_time(network: Network) -> None:
    async with rig(network) as r:
        await r.ready()
        await r.client.cmd("AT+CREG=1;+CGREG=2")
        r.modem.set_registration(0)
        out = (await r.client.read_until(b"+CGREG: 0\r\n")).decode()
        assert lines_of(out) == ["+CREG: 0", "+CGREG: 0"]
        r.modem.inject_sms("+447700900123", "held by the network")
        await r.client.cmd("AT+CMEE=1")
        assert await submit(r.client, HAND_SUBMIT, LEN) == "\r\n+CMS ERROR: 331\r\n"
        r.modem.set_registration(5)
        out = (await r.client.read_until(b'+CMTI: "SM",1\r\n')).decode()
        assert lines_of(out) == ["+CREG: 5", '+CGREG: 5,"1A2B","00C0FFEE"', '+CMTI: "SM",1']
        with pytest.raises(ValueError, match=r"0\.\.5"):
            r.modem.set_registration(9)
