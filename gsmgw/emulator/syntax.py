"""AT syntax shared by the emulator's command modules: result-code texts, the failure
exception, argument parsing and a few wire formats.

Pure: no asyncio, no modem state.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Literal

from gsmgw.sms import gsm7

CTRL_Z = 0x1A
ESC = 0x1B
BACKSPACE = 0x08
MAX_TPDU_LENGTH = 164
"""Largest SMS-SUBMIT TPDU (TS 23.040 §9.2.2.2): first octet, MR, DA (12), PID, DCS, VP (7),
UDL and 140 octets of UD = 164."""

# TS 27.007 §9.2 (+CME ERROR) verbose texts for the codes the emulator uses.
CME_TEXT: dict[int, str] = {
    3: "operation not allowed",
    4: "operation not supported",
    10: "SIM not inserted",
    11: "SIM PIN required",
    12: "SIM PUK required",
    13: "SIM failure",
    16: "incorrect password",
    20: "memory full",
    21: "invalid index",
    30: "no network service",
    50: "Incorrect parameters",
    100: "unknown",
}
# TS 27.005 §3.2.5 (+CMS ERROR) verbose texts; 0..255 are network causes (TS 24.011 / 23.040).
CMS_TEXT: dict[int, str] = {
    21: "Short message transfer rejected",
    27: "Destination out of service",
    28: "Unidentified subscriber",
    38: "Network out of order",
    41: "Temporary failure",
    42: "Congestion",
    47: "Resources unavailable, unspecified",
    300: "ME failure",
    302: "operation not allowed",
    303: "operation not supported",
    304: "invalid PDU mode parameter",
    305: "invalid text mode parameter",
    310: "SIM not inserted",
    311: "SIM PIN required",
    313: "SIM failure",
    316: "SIM PUK required",
    321: "invalid memory index",
    322: "memory full",
    330: "SMSC address unknown",
    331: "no network service",
    332: "network timeout",
    340: "no +CNMA acknowledgement expected",
    500: "unknown error",
}

Handler = Callable[[str, list[str]], Awaitable[list[str]]]
"""A command handler: ``(kind, args) -> information lines``; kind is exec/read/test/set."""


class AtFail(Exception):
    """A command's final result is an error."""

    def __init__(self, kind: Literal["ERROR", "CME", "CMS"] = "ERROR", code: int = 0) -> None:
        super().__init__(f"{kind} {code}")
        self.kind = kind
        self.code = code


class Hung(AtFail):
    """The "hang on submit" behaviour: no final result at all."""


class Unsupported(AtFail):
    """A command the module does not know (some answer ``COMMAND NOT SUPPORT``, not ``ERROR``)."""


class Dropped(Exception):
    """The port went away while a command was running; stop interpreting."""


def split_args(text: str) -> list[str]:
    """Split ``1,"SM","a,b"`` on commas outside quotes; quotes are kept."""
    args: list[str] = []
    cur: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
            cur.append(ch)
        elif ch == "," and not quoted:
            args.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if quoted:
        raise AtFail()
    args.append("".join(cur).strip())
    return args


def unquote(arg: str) -> str:
    if len(arg) >= 2 and arg[0] == '"' and arg[-1] == '"':
        return arg[1:-1]
    return arg


def int_arg(args: list[str], i: int, default: int | None = None, *, lo: int = 0, hi: int = 255) -> int:
    if i >= len(args) or args[i] == "":
        if default is None:
            raise AtFail()
        return default
    try:
        value = int(args[i])
    except ValueError:
        raise AtFail() from None
    if not lo <= value <= hi:
        raise AtFail()
    return value


def text_mode_time(when: datetime) -> str:
    """TS 27.005 §3.1 <scts> in text mode: "yy/MM/dd,hh:mm:ss±zz" (zz in quarter hours)."""
    offset = when.utcoffset()
    quarters = int(offset.total_seconds() // 900) if offset is not None else 0
    sign = "-" if quarters < 0 else "+"
    return f"{when:%y/%m/%d,%H:%M:%S}{sign}{abs(quarters):02d}"


def gsm7_pack_hex(text: str) -> str:
    return gsm7.pack_septets(gsm7.encode_septets(text)).hex().upper()


def gsm7_unpack_hex(data: str) -> str:
    try:
        raw = bytes.fromhex(data)
    except ValueError:
        raise AtFail("CME", 50) from None
    septets = gsm7.unpack_septets(raw, len(raw) * 8 // 7)
    return gsm7.decode_septets(septets).rstrip("\r")
