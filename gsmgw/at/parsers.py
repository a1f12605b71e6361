"""Pure parsers for AT information responses and URCs.

Every function takes the text the modem sent (one line, or the list of
response lines without the final result) and returns a value or raises
:class:`ValueError` with the offending text. Tested with real wire strings
named after the module they came from (tests/at/test_parsers.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# --- generic helpers ---------------------------------------------------------


def split_fields(s: str) -> list[str]:
    """Split a comma-separated AT parameter list, honouring double quotes.

    Quotes are removed from quoted fields; whitespace around fields is trimmed.
    ``'"SM",1,50,"SM",1,50'`` → ``['SM', '1', '50', 'SM', '1', '50']``.
    """
    fields: list[str] = []
    cur: list[str] = []
    in_quotes = False
    for ch in s:
        if ch == '"':
            in_quotes = not in_quotes
        elif ch == "," and not in_quotes:
            fields.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    fields.append("".join(cur).strip())
    return fields


def strip_prefix(line: str, prefix: str) -> str:
    """``'+CSQ: 20,99'`` with ``'+CSQ'`` → ``'20,99'``; ValueError when absent."""
    s = line.strip()
    if not s.upper().startswith(prefix.upper()):
        raise ValueError(f"expected {prefix!r} line, got {line!r}")
    rest = s[len(prefix) :]
    return rest[1:].strip() if rest.startswith(":") else rest.strip()


def find_line(lines: Sequence[str], prefix: str) -> str:
    for line in lines:
        if line.strip().upper().startswith(prefix.upper()):
            return line
    raise ValueError(f"no {prefix!r} line in {list(lines)!r}")


# --- signal ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Signal:
    rssi: int  # 0..31, 99 unknown (TS 27.007 §8.5)
    ber: int

    @property
    def dbm(self) -> int | None:
        """-113 dBm + 2·rssi; ``None`` when the module does not know (99)."""
        if 0 <= self.rssi <= 31:
            return -113 + 2 * self.rssi
        return None


def parse_csq(line: str) -> Signal:
    """``+CSQ: 17,0`` (SIM800) / ``+CSQ: 99,99`` (no signal)."""
    fields = split_fields(strip_prefix(line, "+CSQ"))
    if len(fields) < 2:
        raise ValueError(f"bad +CSQ: {line!r}")
    return Signal(int(fields[0]), int(fields[1]))


# --- registration ------------------------------------------------------------


REG_STAT_NAMES = {
    0: "not registered",
    1: "registered, home",
    2: "searching",
    3: "denied",
    4: "unknown",
    5: "registered, roaming",
    6: "registered, home (SMS only)",
    7: "registered, roaming (SMS only)",
    8: "emergency only",
    9: "registered, home (CSFB not preferred)",
    10: "registered, roaming (CSFB not preferred)",
    11: "attached for RLOS only",
}
# TS 27.007 §7.2 <stat>: 1/5 home/roaming, 6/7 "SMS only", 9/10 "CSFB not preferred".
REGISTERED_STATS = frozenset({1, 5, 6, 7, 9, 10})


@dataclass(frozen=True, slots=True)
class Registration:
    kind: str  # "CREG" / "CGREG" / "CEREG"
    stat: int
    lac: str = ""
    ci: str = ""
    act: int | None = None

    @property
    def registered(self) -> bool:
        return self.stat in REGISTERED_STATS

    def __str__(self) -> str:
        return REG_STAT_NAMES.get(self.stat, f"stat {self.stat}")


def _stat_like(raw: str) -> bool:
    """An unquoted small decimal (``1``, ``001``): a <stat> or <n>, not a hex <lac>
    (``0001``, ``"8BE3"``)."""
    text = raw.strip()
    return text.isdigit() and len(text) <= 3 and int(text) <= 11


def _location(raw: str) -> str:
    """``"8BE3"`` / `` 1F00 `` → the hex digits; the first token of ``0 5`` (Gobi 1000)."""
    parts = raw.replace('"', "").split()
    return parts[0] if parts else ""


def parse_registration(line: str, *, solicited: bool) -> Registration:
    """Parse ``+CREG``/``+CGREG``/``+CEREG``/``+C5GREG``.

    The read response carries ``<n>`` first (``+CREG: 0,1`` answering
    ``AT+CREG?``), the URC does not (``+CREG: 1,"00C3","1234"``). Real modules
    mix them up (a Sony-Ericsson MD400 sends ``+CREG: 2,5,"0502","0404736D"`` as a
    URC; ModemManager's test-modem-helpers.c collects such lines), so the form is
    read from the line itself: 1 field is a URC, 2 a read answer, and from 3 on
    the second field decides (a small unquoted number is a <stat>, so the first
    was <n>; a location means the first was the <stat>). ``solicited`` is only the
    tie-breaker for a line whose first field is empty.
    """
    m = re.match(r"^\+(C|CG|CE|C5G)REG:\s*(.*)$", line.strip())
    if not m:
        raise ValueError(f"not a registration line: {line!r}")
    kind = f"{m.group(1)}REG"
    raw = m.group(2).split(",")
    if len(raw) == 1:
        has_n = False
    elif len(raw) == 2:
        has_n = True
    else:
        has_n = _stat_like(raw[1]) and '"' not in raw[1]
    if not raw[0].strip() and len(raw) > 1:
        has_n = solicited
    fields = raw[1:] if has_n else raw
    if not fields or not fields[0].strip():
        raise ValueError(f"registration line without <stat>: {line!r}")
    stat = int(fields[0].strip().strip('"'))
    lac = _location(fields[1]) if len(fields) > 1 else ""
    ci = _location(fields[2]) if len(fields) > 2 else ""
    act = None
    if len(fields) > 3 and fields[3].strip().isdigit():
        act = int(fields[3])
    return Registration(kind, stat, lac, ci, act)


# --- SIM ---------------------------------------------------------------------


def parse_cpin(line: str) -> str:
    """``+CPIN: READY`` → ``'READY'``; ``+CPIN: SIM PIN`` → ``'SIM PIN'``."""
    return strip_prefix(line, "+CPIN").strip('"').upper()


def parse_pin_attempts(lines: Sequence[str]) -> int | None:
    """Remaining SIM PIN attempts from one of the vendor variants, or ``None``.

    * ``+CPINR: SIM PIN,3,3``            (3GPP TS 27.007 §8.65, SIMCom A76xx, Telit)
    * ``+QPINC: "SC",3,10``              (Quectel, AT+QPINC="SC")
    * ``^CPIN: SIM PIN,3,10,3,10,3``     (Huawei, AT^CPIN?: code,times,puk,pin,puk2,pin2)
    * ``+SPIC: 3,10,3,10``               (SIMCom SIM800/SIM5320, AT+SPIC)
    * ``#PCT: 3``                        (Telit, AT#PCT)
    * ``+CPINC: 3,3,10,10``              (Sierra/Wavecom, AT+CPINC?: pin1,pin2,puk1,puk2)
    """
    for raw in lines:
        line = raw.strip()
        try:
            if line.startswith("+CPINR:"):
                f = split_fields(strip_prefix(line, "+CPINR"))
                if f[0].upper() == "SIM PIN":
                    return int(f[1])
            elif line.startswith("+QPINC:"):
                f = split_fields(strip_prefix(line, "+QPINC"))
                if f[0].upper() == "SC":
                    return int(f[1])
            elif line.startswith("^CPIN:"):
                f = split_fields(strip_prefix(line, "^CPIN"))
                # ^CPIN: <code>,[<times>],<puk_times>,<pin_times>,<puk2_times>,<pin2_times>
                return int(f[3])
            elif line.startswith("+SPIC:"):
                return int(split_fields(strip_prefix(line, "+SPIC"))[0])
            elif line.startswith("#PCT:"):
                return int(split_fields(strip_prefix(line, "#PCT"))[0])
            elif line.startswith("+CPINC:"):
                return int(split_fields(strip_prefix(line, "+CPINC"))[0])
        except (IndexError, ValueError):
            continue
    return None


# --- identity ----------------------------------------------------------------


def parse_plain_value(lines: Sequence[str], prefix: str = "") -> str:
    """The value of a one-value response, with or without a prefix.

    ``AT+CGSN`` answers ``869170031234566`` on SIM800 and
    ``+CGSN: "869170031234566"`` on some SIMCom LTE modules;
    ``AT+CGMI`` answers ``Quectel`` or ``+CGMI: "SIMCOM_Ltd"``. A prefixed
    line wins; otherwise the last line that is not line noise (noise comes
    before a response, and undecodable bytes show up as U+FFFD).
    """
    candidates: list[str] = []
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        if prefix and line.upper().startswith(prefix.upper()):
            return strip_prefix(line, prefix).strip('"').strip()
        if "\ufffd" in line:
            continue
        if line.startswith(("+", "^", "#")) and ":" in line:
            line = line.split(":", 1)[1].strip()
        candidates.append(line.strip('"').strip())
    if not candidates:
        raise ValueError(f"empty response (wanted {prefix or 'a value'})")
    return candidates[-1]


_DIGITS = re.compile(r"\d{14,17}")


def _search_lines(lines: Sequence[str], pattern: re.Pattern[str], what: str) -> str:
    for raw in reversed(lines):  # line noise, if any, comes first
        m = pattern.search(raw)
        if m:
            return m.group(0)
    raise ValueError(f"no {what} in {list(lines)!r}")


def parse_imei(lines: Sequence[str]) -> str:
    return _search_lines(lines, _DIGITS, "IMEI")


def parse_imsi(lines: Sequence[str]) -> str:
    return _search_lines(lines, re.compile(r"\d{6,15}"), "IMSI")


_ICCID = re.compile(r"[0-9A-Fa-f]{18,22}")


def parse_iccid(lines: Sequence[str]) -> str:
    """ICCID from ``+CCID: 8944...``, ``+ICCID: 89...``, ``^ICCID: 98...``,
    ``+QCCID: 89...``, or a bare line (SIM800 ``AT+CCID``). An ICCID starts with the
    telecom Major Industry Identifier 89; anything else is not one.

    Huawei ``^ICCID`` returns the EF_ICCID bytes nibble-swapped
    (``98...``; ModemManager ``mm-sim-huawei.c`` swaps it back). ICCIDs start
    with the telecom industry identifier 89 (ITU-T E.118), so a ``98`` start is
    undone whatever command produced it. The trailing ``F`` filler is dropped.
    """
    for raw in lines:
        line = raw.strip()
        if ":" in line:
            line = line.split(":", 1)[1]
        m = _ICCID.search(line.replace('"', "").strip())
        if m:
            iccid = m.group(0).upper()
            if iccid.startswith("98"):
                iccid = "".join(iccid[i + 1] + iccid[i] for i in range(0, len(iccid) - 1, 2))
            if not iccid.startswith("89"):
                continue  # ModemManager's test-modem-helpers.c rejects these ("invalid MII") too
            return iccid.rstrip("F")
    raise ValueError(f"no ICCID in {list(lines)!r}")


def parse_crsm_iccid(line: str) -> str:
    """``+CRSM: 144,0,"98940000000000000000"`` (AT+CRSM=176,12258,0,0,10) → ICCID."""
    f = split_fields(strip_prefix(line, "+CRSM"))
    if len(f) < 3 or f[0] != "144":
        raise ValueError(f"+CRSM read of EF_ICCID failed: {line!r}")
    data = f[2].upper()
    iccid = "".join(data[i + 1] + data[i] for i in range(0, len(data) - 1, 2))
    return iccid.rstrip("F")


def parse_cops(line: str) -> str:
    """``+COPS: 0,0,"T-Mobile",7`` → ``'T-Mobile'``; ``+COPS: 0`` → ``''``."""
    f = split_fields(strip_prefix(line, "+COPS"))
    return f[2] if len(f) >= 3 else ""


def parse_cnum(lines: Sequence[str]) -> str:
    """First number of ``+CNUM: "","+15550000001",145`` lines; ``''`` when the SIM knows none."""
    for raw in lines:
        if raw.strip().startswith("+CNUM:"):
            f = split_fields(strip_prefix(raw, "+CNUM"))
            if len(f) >= 2 and f[1]:
                number = f[1]
                if len(f) >= 3 and f[2] == "145" and not number.startswith("+"):
                    number = "+" + number
                return number
    return ""


# --- storage -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StorageUsage:
    mem: str
    used: int
    total: int


def parse_cpms(line: str) -> list[StorageUsage]:
    """``+CPMS: "SM",1,50,"SM",1,50,"SM",1,50`` (read) or ``+CPMS: 1,50,1,50,1,50`` (set).

    The set form has no memory names; they come back as ``''``.
    """
    f = split_fields(strip_prefix(line, "+CPMS"))
    out: list[StorageUsage] = []
    if f and f[0] and not f[0].isdigit():
        for i in range(0, len(f) - 2, 3):
            out.append(StorageUsage(f[i], int(f[i + 1]), int(f[i + 2])))
    else:
        for i in range(0, len(f) - 1, 2):
            out.append(StorageUsage("", int(f[i]), int(f[i + 1])))
    if not out:
        raise ValueError(f"bad +CPMS: {line!r}")
    return out


def parse_cpms_test(line: str) -> list[list[str]]:
    """``AT+CPMS=?``: the memories offered for <mem1>, <mem2>, <mem3>.

    ``+CPMS: ("SM","ME"),("SM","ME"),("SM","ME")`` (most), with blanks
    (``("SM", "ME", "SM_P", "ME_P", "MT")``, Alcatel S320), without brackets, one
    memory each (``+CPMS: "ME","MT","SM"``, Huawei MU609; ``"SM","SM","SM"``, iWOW),
    empty (``+CPMS: ``, Samsung J700) or with a quote missing (``(ME", "SR")``).
    """
    body = strip_prefix(line, "+CPMS")
    if not body.strip():
        return []
    items: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in body:  # split on the commas between parameters, not inside "(...)"
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        if ch == "," and depth == 0:
            items.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    items.append("".join(cur))
    return [[m.upper() for m in re.findall(r"[A-Za-z_]+", item)] for item in items]


# --- SMS ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListedPdu:
    index: int
    stat: int
    tpdu_length: int
    pdu_hex: str


_HEX = re.compile(r"^[0-9A-Fa-f]+$")
# "+CMGR: 1,,147 0791..." (the PDU on the header line after a blank; ModemManager's
# test-modem-helpers.c "generic" case) is split into its header and its PDU.
_HEADER_AND_PDU = re.compile(r"^(.*?\d)\s+([0-9A-Fa-f]{14,})$")


def _header_and_pdu(body: str) -> tuple[str, str | None]:
    m = _HEADER_AND_PDU.match(body)
    return (m.group(1), m.group(2)) if m else (body, None)


def _pdu_line(line: str) -> str | None:
    """A PDU line, tolerating blanks and stray quotes around it (gammu at-sms/04.dump ends
    with ``"``) and lower-case hex; None if the line is not hex."""
    text = line.strip().strip('"').strip()
    return text.upper() if text and _HEX.match(text) else None


def _stat(field: str) -> int:
    """``<stat>``; empty (gammu at-sms/39.dump ``+CMGR: ,,92``) reads as 0 REC UNREAD."""
    return int(field) if field.strip() else 0


def tpdu_length_fitting(pdu_hex: str, stated: int) -> int:
    """The ``<length>`` (TPDU octets, TS 27.005 §3.1) that fits the PDU as printed.

    Normally ``stated``. When it contradicts the SMSC field the PDU starts with (some
    answers carry a <length> that counts something else), the length the PDU itself
    gives wins: the PDU is what gets decoded, and a wrong <length> would make a good
    message undecodable. A PDU printed without an SMSC field (``stated`` equals its
    length) is left alone.
    """
    octets = len(pdu_hex) // 2
    if octets < 2 or len(pdu_hex) % 2 or stated in (octets, octets - 1 - int(pdu_hex[:2], 16)):
        return stated
    derived = octets - 1 - int(pdu_hex[:2], 16)
    return derived if derived > 0 else stated


def parse_cmgl(lines: Sequence[str]) -> list[ListedPdu]:
    """PDU-mode ``AT+CMGL=4``: ``+CMGL: <index>,<stat>,[<alpha>],<length>`` then the PDU line.

    Lines that are neither (garbage, stray URCs that slipped through) are
    skipped; a header without its PDU line is dropped, not guessed.
    """
    out: list[ListedPdu] = []
    pending: tuple[int, int, int] | None = None
    for raw in lines:
        line = raw.strip()
        if line.startswith("+CMGL:"):
            head, same_line_pdu = _header_and_pdu(strip_prefix(line, "+CMGL"))
            f = split_fields(head)
            pending = (int(f[0]), _stat(f[1]), int(f[-1]))
            if same_line_pdu is None:
                continue
            pdu: str | None = same_line_pdu.upper()
        else:
            pdu = _pdu_line(line)
        if pending is not None and pdu is not None:
            out.append(ListedPdu(pending[0], pending[1], tpdu_length_fitting(pdu, pending[2]), pdu))
            pending = None
    return out


def parse_cmgr(lines: Sequence[str], index: int) -> ListedPdu | None:
    """``+CMGR: <stat>,[<alpha>],<length>`` then the PDU; ``None`` for an empty slot.

    An empty slot answers plain ``OK`` on most modules (EC25, SIM800) and
    ``+CMGR: 0,,0`` with no PDU line on some Huawei firmware. Seen on real modules
    and tolerated: the <alpha> left out (``+CMGR: 0,23``), the index in front
    (``+CMGR: 4,1,,151``), an empty <stat>, only the <length> (``+CMGR: 24``), the
    PDU on the header line.
    """
    header: tuple[int, int] | None = None
    for raw in lines:
        line = raw.strip()
        if line.startswith("+CMGR:"):
            head, same_line_pdu = _header_and_pdu(strip_prefix(line, "+CMGR"))
            f = split_fields(head)
            if len(f) >= 4:
                stat = _stat(f[1])  # <index>,<stat>,<alpha>,<length>
            elif len(f) == 1:
                stat = 0  # only <length>: <stat> unknown
            else:
                stat = _stat(f[0])
            header = (stat, int(f[-1]))
            if same_line_pdu is None:
                continue
            pdu: str | None = same_line_pdu.upper()
        else:
            pdu = _pdu_line(line)
        if header is not None and pdu is not None:
            if header[1] == 0:
                return None
            return ListedPdu(index, header[0], tpdu_length_fitting(pdu, header[1]), pdu)
    return None


def parse_cmgs(lines: Sequence[str]) -> int:
    """``+CMGS: 53`` → TP-MR 53 (TS 27.005 §3.5.1; an ``<ackpdu>`` may follow)."""
    f = split_fields(strip_prefix(find_line(lines, "+CMGS"), "+CMGS"))
    return int(f[0])


def parse_cmti(line: str) -> tuple[str, int]:
    """``+CMTI: "SM",3`` → ``('SM', 3)``; also ``+CDSI: "SR",0``."""
    body = line.split(":", 1)[1] if ":" in line else ""
    f = split_fields(body)
    if len(f) < 2:
        raise ValueError(f"bad indication: {line!r}")
    return f[0], int(f[1])


def parse_cmt_header(line: str) -> int:
    """``+CMT: ,24`` / ``+CMT: "",24`` → TPDU length 24."""
    f = split_fields(strip_prefix(line, "+CMT"))
    return int(f[-1])


def parse_cds_header(line: str) -> int:
    """``+CDS: 25`` → TPDU length 25."""
    f = split_fields(strip_prefix(line, "+CDS"))
    return int(f[-1])


@dataclass(frozen=True, slots=True)
class Ussd:
    status: int  # 0 no further action, 1 further action required, 2 terminated, ...
    text: str  # as sent, still possibly hex-encoded
    dcs: int | None


def parse_cusd(line: str) -> Ussd:
    """``+CUSD: 0,"Your balance is 10.00",15`` (quotes may hold commas and newlines)."""
    body = strip_prefix(line, "+CUSD")
    m = re.match(r'^(\d+)\s*(?:,\s*"(.*)"\s*(?:,\s*(\d+))?)?\s*$', body, re.S)
    if not m:
        # unquoted text (some ZTE firmware): +CUSD: 0,Balance 5,15
        f = body.split(",")
        if not f[0].strip().isdigit():
            raise ValueError(f"bad +CUSD: {line!r}")
        dcs = int(f[-1]) if len(f) > 2 and f[-1].strip().isdigit() else None
        text = ",".join(f[1:-1] if dcs is not None else f[1:]).strip()
        return Ussd(int(f[0]), text, dcs)
    return Ussd(int(m.group(1)), m.group(2) or "", int(m.group(3)) if m.group(3) else None)


def parse_range_list(s: str) -> set[int]:
    """``(0-3)`` / ``(0,2)`` / ``(0,1,2)`` / ``0-2`` → set of ints."""
    s = s.strip().strip("()")
    out: set[int] = set()
    for part in s.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            out.update(range(int(lo), int(hi) + 1))
        else:
            out.add(int(part))
    return out


def parse_cnmi_test(line: str) -> list[set[int]]:
    """``+CNMI: (0-2),(0-3),(0,2),(0-2),(0,1)`` → supported values per parameter."""
    body = strip_prefix(line, "+CNMI")
    groups = re.findall(r"\(([^)]*)\)", body)
    if not groups:
        raise ValueError(f"bad +CNMI test response: {line!r}")
    return [parse_range_list(g) for g in groups]

