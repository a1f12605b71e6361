"""The simulated network's rules (pure parts) and routing edge cases."""

from __future__ import annotations

import re

import gammu
import pytest

from gsmgw.emulator import DeliveryRule, Network, parse_fail_rule
from gsmgw.sms import encode_submit
from tests.emulator.emu_client import PtyClient, lines_of, rig, submit

pytestmark = pytest.mark.timeout(10)


@pytest.mark.parametrize(
    ("spec", "rule"),
    [
        (r"\+44.*", DeliveryRule(r"\+44.*", 0x41)),
        (r"\+1555.*=0x46", DeliveryRule(r"\+1555.*", 0x46)),
        (r"\+33612345678=64", DeliveryRule(r"\+33612345678", 64)),
        (r"\+49(1|2)=0x20", DeliveryRule(r"\+49(1|2)", 0x20)),
    ],
)
def test_parse_fail_rule(spec: str, rule: DeliveryRule) -> None:
    assert parse_fail_rule(spec) == rule


@pytest.mark.parametrize("spec", ["(", r"\+44=abc", r"\+44=256", r"\+44=-1"])
def test_parse_fail_rule_rejects(spec: str) -> None:
    with pytest.raises(ValueError, match="fail rule"):
        parse_fail_rule(spec)


def test_rules_first_match_wins_and_callable_rules() -> None:
    net = Network(delivery_rule=[DeliveryRule(r"\+44.*", 0x41), DeliveryRule(r"\+4477.*", 0x46)])
    assert net.status_for("+447700900123") == 0x41
    assert net.status_for("+33612345678") == 0x00
    net = Network(delivery_rule=lambda number: 0x45 if number.endswith("13") else 0)
    assert (net.status_for("+33600000013"), net.status_for("+33600000012")) == (0x45, 0)


async def test_national_format_destination_reaches_the_sim(network: Network) -> None:
    # smstools and some firmwares submit the number without "+", TON international.
    part = encode_submit("15550000002", "no plus").parts[0]
    async with rig(network) as a, rig(network, number="+15550000002") as b:
        await a.ready()
        await b.ready()
        assert "+CMGS: 0" in await submit(a.client, part.pdu, part.tpdu_length)
        await network.drain()
        await b.client.quiet(0.02)
        pdu = lines_of(await b.client.cmd("AT+CMGR=1"))[1]
        assert gammu.DecodePDU(bytes.fromhex(pdu))["Text"] == "no plus"


async def test_inbound_for_an_unplugged_sim_waits_for_it(network: Network) -> None:
    async with rig(network) as a, rig(network, number="+15550000002") as b:
        await a.ready()
        await b.ready()
        await b.pm.unplug()
        part = encode_submit("+15550000002", "while away").parts[0]
        assert "+CMGS: 0" in await submit(a.client, part.pdu, part.tpdu_length)
        await network.drain()
        assert b.modem.storages["SM"].used == 0
        await b.pm.replug()
        client = PtyClient(b.pm.path)
        try:
            out = await client.read_until(re.compile(rb'\+CMTI: "SM",1\r\n'))
            assert b"SMS Ready" in out  # it came after the boot, once registered
        finally:
            client.close()


async def test_status_report_comes_after_the_configured_delay() -> None:
    import time

    net = Network(report_delay_s=0.25)
    try:
        async with rig(net) as r:
            await r.ready()
            await r.client.cmd("AT+CNMI=2,1,0,1,0")
            part = encode_submit("+447700900123", "timed", status_report=True).parts[0]
            assert "+CMGS: 0" in await submit(r.client, part.pdu, part.tpdu_length)
            t0 = time.monotonic()
            assert b"+CDS" not in await r.client.quiet(0.15)
            await r.client.read_until(re.compile(rb"\+CDS: \d+\r\n[0-9A-F]+\r\n"))
            assert 0.2 <= time.monotonic() - t0 < 1.0
    finally:
        await net.aclose()
