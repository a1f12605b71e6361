"""Unsolicited result codes: a table of patterns, consulted before response matching.

Pure. The channel asks :func:`classify` about every complete line; a match is
a URC and never reaches the response of the command in flight (the
counter-example is python-gsmmodem's ``serial_comms.py``, which appends any
line that arrives during a command to that command's response).

Some prefixes are both a URC and the information response of a query
(``+CREG: 1`` unsolicited vs ``+CREG: 2,1,"00C3","1234"`` answering
``AT+CREG?``). Those are marked ``ambiguous``: while a command whose response
prefix is the same is in flight, the line belongs to the command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class UrcSpec:
    name: str
    pattern: re.Pattern[str]
    # +CMT / +CDS in PDU mode: the next line is the PDU (TS 27.005 §3.4.1).
    two_line: bool = False
    # Same prefix as a query response (see module docstring).
    ambiguous: bool = False
    # Prefix used to compare with the command's response prefix.
    prefix: str = ""


@dataclass(frozen=True, slots=True)
class Urc:
    name: str
    line: str
    pdu: str | None = None  # the second line of a two-line URC


def _spec(name: str, regex: str, **kw: object) -> UrcSpec:
    prefix = regex.lstrip("^\\").split(":")[0].replace("\\", "") if ":" in regex else ""
    return UrcSpec(name, re.compile(regex), prefix=prefix, **kw)  # type: ignore[arg-type]


# Order matters only where one prefix is the start of another (+CMT before +CMTI
# is avoided by the ":" in every pattern).
URC_TABLE: tuple[UrcSpec, ...] = (
    # SMS (TS 27.005 §3.4.1)
    _spec("CMTI", r"^\+CMTI:\s*"),  # +CMTI: "SM",3
    _spec("CMT", r"^\+CMT:\s*", two_line=True),  # +CMT: ,24  then the PDU
    _spec("CDSI", r"^\+CDSI:\s*"),  # +CDSI: "SR",0
    _spec("CDS", r"^\+CDS:\s*", two_line=True),  # +CDS: 24  then the PDU
    _spec("CBM", r"^\+CBM:\s*", two_line=True),  # cell broadcast, PDU on next line
    # USSD (TS 27.007 §7.15): always a URC, even while AT+CUSD=1 is in flight
    _spec("CUSD", r"^\+CUSD:\s*"),
    # Registration (TS 27.007 §7.2, §10.1.19, §10.1.22)
    _spec("CREG", r"^\+CREG:\s*", ambiguous=True),
    _spec("CGREG", r"^\+CGREG:\s*", ambiguous=True),
    _spec("CEREG", r"^\+CEREG:\s*", ambiguous=True),
    _spec("C5GREG", r"^\+C5GREG:\s*", ambiguous=True),
    _spec("CPIN", r"^\+CPIN:\s*", ambiguous=True),  # "+CPIN: READY" after boot (SIM800, EC25)
    _spec("CFUN", r"^\+CFUN:\s*", ambiguous=True),  # "+CFUN: 1" after boot (SIM800)
    _spec("CSQN", r"^\+CSQN:\s*"),  # SIM800 with AT+EXUNSOL="SQ",1
    _spec("CRING", r"^\+CRING:\s*"),
    _spec("CLIP", r"^\+CLIP:\s*"),
    _spec("CIEV", r"^\+CIEV:\s*"),
    _spec("CTZV", r"^\+CTZ[VE]:\s*"),
    _spec("CGEV", r"^\+CGEV:\s*"),
    _spec("CMTE", r"^\+CMTE:\s*"),  # SIM800 temperature alarm
    _spec("STIN", r"^\+STIN:\s*"),  # SIM800 SIM toolkit
    # Quectel (EC25/EG25/BG96/M95 AT manuals): +QIND: SMS DONE, +QIND: PB DONE, +QUSIM: 1
    _spec("QIND", r"^\+QIND:\s*"),
    _spec("QUSIM", r"^\+QUSIM:\s*"),
    _spec("PBREADY", r"^\+PBREADY$"),
    # Huawei (E3372 / E1550 / MU709 AT manuals): periodic and boot reports
    _spec("HW_RSSI", r"^\^RSSI:\s*"),
    _spec("HW_HCSQ", r"^\^HCSQ:\s*"),
    _spec("HW_BOOT", r"^\^BOOT:\s*"),
    _spec("HW_MODE", r"^\^MODE:\s*"),
    _spec("HW_SRVST", r"^\^SRVST:\s*"),
    _spec("HW_SIMST", r"^\^SIMST:\s*"),
    _spec("HW_RFSWITCH", r"^\^RFSWITCH:\s*"),
    _spec("HW_DSFLOWRPT", r"^\^DSFLOWRPT:\s*"),
    _spec("HW_NWTIME", r"^\^NWTIME:\s*"),
    _spec("HW_CEND", r"^\^(?:CEND|ORIG|CONF|CONN):\s*"),
    _spec("HW_STIN", r"^\^STIN:\s*"),
    _spec("HW_SYSSTART", r"^\^SYSSTART$"),
    _spec("HW_SMMEMFULL", r"^\^SMMEMFULL:\s*"),
    # SIMCom boot / readiness lines (SIM800 Series AT Command Manual V1.09 §19)
    _spec("RDY", r"^RDY$"),
    _spec("CALL_READY", r"^Call Ready$"),
    _spec("SMS_READY", r"^SMS Ready$"),
    _spec("RING", r"^RING$"),
    # SIMCom SIM7500/SIM7600 boot lines
    _spec("SMS_DONE", r"^SMS DONE$"),
    _spec("PB_DONE", r"^PB DONE$"),
    _spec("POWER_DOWN", r"^(?:NORMAL POWER DOWN|UNDER-VOLTAGE (?:POWER DOWN|WARNNING)|OVER-VOLTAGE (?:POWER DOWN|WARNNING))$"),
    # Sierra/Telit/u-blox odds and ends
    _spec("UBLOX_UUSTS", r"^\+UUS\w+:\s*"),
    _spec("TELIT_QSS", r"^#QSS:\s*"),
)


# Every spec's pattern in one alternation: a line none of them matches is rejected by
# one search in C (the table is ~50 patterns and most lines are not URCs).
_ANY_URC = re.compile("|".join(f"(?:{spec.pattern.pattern})" for spec in URC_TABLE))


def classify(line: str, in_flight_prefix: str | None = None) -> UrcSpec | None:
    """The URC spec matching ``line``, or ``None`` if it is not unsolicited.

    ``in_flight_prefix`` is the information-response prefix of the command in
    flight (``"+CREG"`` for ``AT+CREG?``); an ambiguous URC with that prefix is
    treated as the command's response instead.
    """
    if _ANY_URC.match(line) is None:  # most lines are responses: one regex, not one per spec
        return None
    for spec in URC_TABLE:
        if spec.pattern.match(line):
            if spec.ambiguous and in_flight_prefix and spec.prefix == in_flight_prefix:
                return None
            return spec
    return None


def response_prefix(command: str) -> str | None:
    """``AT+CREG?`` → ``+CREG``; ``AT^SYSINFO`` → ``^SYSINFO``; ``ATI`` → ``None``."""
    m = re.match(r"^AT([+^#$%*][A-Z0-9]+)", command.strip().upper())
    return m.group(1) if m else None


def needs_continuation(spec: UrcSpec, line: str) -> bool:
    """A text-mode ``+CUSD`` string may span lines (an unbalanced quote)."""
    return spec.name == "CUSD" and line.count('"') % 2 == 1
