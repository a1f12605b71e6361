"""The URC table: which real lines are unsolicited, and when an ambiguous one is a response."""

from __future__ import annotations

import pytest

from gsmgw.at.urc import classify, needs_continuation, response_prefix


@pytest.mark.parametrize(
    ("line", "name"),
    [
        ('+CMTI: "SM",3', "CMTI"),
        ("+CMT: ,24", "CMT"),
        ('+CDSI: "SM",0', "CDSI"),  # asterisk-chan-quectel PR #75, EC25-E
        ("+CDS: 25", "CDS"),
        ('+CUSD: 0,"A0E09A5E2FB3D9E539E858A7A3C3E2B25B07CAB9723150B12A7501",15', "CUSD"),  # python-gammu #3
        ("RDY", "RDY"),  # SIM800 manual, URC summary; TinyGSM #318 (SIM808)
        ("Call Ready", "CALL_READY"),
        ("SMS Ready", "SMS_READY"),
        ("+CFUN: 1", "CFUN"),
        ("+CPIN: SIM PIN", "CPIN"),  # TinyGSM #318, SIM808 after reboot
        ("+QIND: SMS DONE", "QIND"),  # Quectel EC2x boot
        ('+QIND: "smsfull","SM"', "QIND"),
        ("^RSSI: 17", "HW_RSSI"),  # Huawei E3372 periodic report
        ("^BOOT:20952548,0,0,0,72", "HW_BOOT"),
        ("^MODE: 7,17", "HW_MODE"),
        ("^SYSSTART", "HW_SYSSTART"),
        ("^CARDMODE: 2", None),  # openLuat Air720UG: unknown vendor line is not a URC we know
        ("RING", "RING"),
        ("+CREG: 1", "CREG"),
        ("+CSQ: 20,99", None),
        ("OK", None),
        ("+CMGS: 12", None),
    ],
)
def test_classify(line: str, name: str | None) -> None:
    spec = classify(line)
    assert (spec.name if spec else None) == name


def test_two_line_urcs() -> None:
    assert classify("+CMT: ,24").two_line  # type: ignore[union-attr]
    assert classify("+CDS: 25").two_line  # type: ignore[union-attr]
    assert not classify('+CMTI: "SM",3').two_line  # type: ignore[union-attr]


def test_ambiguous_prefix_belongs_to_the_query_in_flight() -> None:
    # "+CREG: 2,1,..." answering AT+CREG? must reach the command, not the URC handler.
    assert classify('+CREG: 2,1,"00A8","5355E8D",7', "+CREG") is None
    assert classify("+CPIN: READY", "+CPIN") is None
    # ...but another command's response prefix does not shadow it.
    assert classify("+CREG: 1", "+CSQ") is not None
    # +CUSD is never ambiguous: it is a URC even while AT+CUSD=1 is in flight.
    assert classify('+CUSD: 0,"x",15', "+CUSD") is not None


@pytest.mark.parametrize(
    ("command", "prefix"),
    [("AT+CREG?", "+CREG"), ("AT^SYSINFO", "^SYSINFO"), ("AT#PCT", "#PCT"), ("ATI", None), ("at+csq", "+CSQ")],
)
def test_response_prefix(command: str, prefix: str | None) -> None:
    assert response_prefix(command) == prefix


def test_cusd_continuation() -> None:
    spec = classify('+CUSD: 1,"Balance: 5 EUR')
    assert spec is not None and needs_continuation(spec, '+CUSD: 1,"Balance: 5 EUR')
    assert not needs_continuation(spec, '+CUSD: 1,"Balance: 5 EUR\n1. Exit",15')
