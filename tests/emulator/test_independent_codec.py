"""Round trips through the emulator where python-gammu encodes what goes in and decodes what
comes out, so a bug mirrored in gsmgw's own encoder and decoder cannot hide."""

from __future__ import annotations

import re

import gammu
import pytest

from gsmgw.emulator import Network
from tests.emulator.emu_client import lines_of, rig, submit

pytestmark = pytest.mark.timeout(10)


def gammu_submits(number: str, text: str, *, unicode: bool = False) -> list[str]:
    """SMS-SUBMIT PDUs as python-gammu builds them. With no SMSC number gammu writes the
    SMSC field as "0181" (length 1, type-of-address only): the modem must cope."""
    parts = gammu.EncodeSMS({"Class": -1, "Unicode": unicode,
                             "Entries": [{"ID": "ConcatenatedTextLong", "Buffer": text}]})
    out = []
    for sms in parts:
        sms["Number"] = number
        sms["SMSC"] = {"Location": 0, "Number": ""}
        sms["Type"] = "Submit"
        out.append(gammu.EncodePDU(sms).hex().upper())
    return out


def tpdu_length(pdu: str) -> int:
    raw = bytes.fromhex(pdu)
    return len(raw) - 1 - raw[0]


@pytest.mark.parametrize(
    ("text", "unicode"),
    [
        ("plain GSM text with € and [brackets]", False),
        ("a long GSM text " * 15, False),
        ("Ünïcødé ✓ 你好 " * 8, True),
    ],
)
async def test_gammu_encoded_submits_arrive_as_gammu_decodable_delivers(
    network: Network, text: str, unicode: bool
) -> None:
    pdus = gammu_submits("+15550000002", text, unicode=unicode)
    async with rig(network) as a, rig(network, number="+15550000002") as b:
        await a.ready()
        await b.ready()
        for i, pdu in enumerate(pdus):
            assert lines_of(await submit(a.client, pdu, tpdu_length(pdu))) == [f"+CMGS: {i}", "OK"]
        # The emulator decoded what gammu encoded (destination, text, concatenation).
        assert [s.destination for s in a.modem.sent] == ["+15550000002"] * len(pdus)
        assert "".join(s.submit.text for s in a.modem.sent) == text
        await network.drain()
        await b.client.quiet(0.02)
        listing = lines_of(await b.client.cmd("AT+CMGL=4"))
        headers, delivered = listing[0:-1:2], listing[1:-1:2]
        assert len(delivered) == len(pdus)
        decoded = [gammu.DecodePDU(bytes.fromhex(p)) for p in delivered]
        for header, pdu, d in zip(headers, delivered, decoded, strict=True):
            assert re.fullmatch(r"\+CMGL: \d+,0,,(\d+)", header)
            assert int(header.rsplit(",", 1)[1]) == tpdu_length(pdu)
            assert d["Type"] == "Deliver" and d["Number"] == "+15550000001"
            assert d["SMSC"]["Number"] == network.smsc
        originals = [gammu.DecodePDU(bytes.fromhex(p)) for p in pdus]
        assert [d["UDH"]["Text"] for d in decoded] == [o["UDH"]["Text"] for o in originals]
        assert {d["Coding"] for d in decoded} == {o["Coding"] for o in originals}
        # python-gammu appends a NUL and stray bytes after text holding GSM escape
        # sequences (€, [, ]) when it decodes; it does so for its own original PDU too.
        assert "".join(d["Text"].split("\x00")[0] for d in decoded) == text


async def test_status_report_request_is_honoured_for_a_gammu_pdu(network: Network) -> None:
    pdu = gammu_submits("+447700900123", "report please")[0]
    # Set TP-SRR (bit 5 of the first TPDU octet) by hand: independent of any encoder's API.
    smsc_hex_len = 2 + 2 * int(pdu[:2], 16)
    first = int(pdu[smsc_hex_len:smsc_hex_len + 2], 16) | 0x20
    pdu = pdu[:smsc_hex_len] + f"{first:02X}" + pdu[smsc_hex_len + 2:]
    async with rig(network) as r:
        await r.ready()
        await r.client.cmd("AT+CNMI=2,1,0,1,0")
        assert "+CMGS: 0" in await submit(r.client, pdu, tpdu_length(pdu))
        cds = (await r.client.read_until(re.compile(rb"\+CDS: \d+\r\n[0-9A-F]+\r\n"))).decode()
        report = gammu.DecodePDU(bytes.fromhex(lines_of(cds)[1]))
        assert (report["Type"], report["Number"], report["MessageReference"], report["DeliveryStatus"]) == (
            "Status_Report", "+447700900123", 0, 0)
