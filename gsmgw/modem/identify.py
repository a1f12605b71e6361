"""Who is on a port: IMEI and ICCID, asked quickly and nothing more.

Used by the pool's discovery to find a modem by identity among the serial ports
present (a full bring-up, as in ``probe``, would wait for registration).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from gsmgw.at.channel import ATChannel
from gsmgw.at.parsers import parse_iccid, parse_imei
from gsmgw.errors import ModemError
from gsmgw.transport import open_port

log = logging.getLogger(__name__)

# ICCID commands differ by vendor; the first that answers wins.
ICCID_COMMANDS = ("AT+CCID", "AT+ICCID", "AT+QCCID", "AT^ICCID?")


@dataclass(frozen=True, slots=True)
class PortIdentity:
    port: str
    imei: str
    iccid: str


async def identify_port(port: str, *, baudrate: int = 115200, timeout_s: float = 2.0) -> PortIdentity | None:
    """Open ``port``, ask for IMEI and ICCID, close it. None if it is not a modem."""
    try:
        reader, writer = await open_port(port, baudrate=baudrate)
    except ModemError as exc:
        log.debug("discovery: %s: %s", port, exc)
        return None
    ch = ATChannel(reader, writer, name=f"discover {port}")
    ch.start()
    try:
        with contextlib.suppress(ModemError):
            await ch.command("AT", timeout_s)  # wakes autobaud; may be echoed
        await ch.command("ATE0", timeout_s)
        imei = parse_imei((await ch.command("AT+CGSN", timeout_s)).lines)
        iccid = ""
        for cmd in ICCID_COMMANDS:
            try:
                iccid = parse_iccid((await ch.command(cmd, timeout_s)).lines)
                break
            except (ModemError, ValueError):
                continue
        return PortIdentity(port, imei, iccid)
    except (ModemError, ValueError) as exc:
        log.debug("discovery: %s is not an answering modem: %s", port, exc)
        return None
    finally:
        await ch.close()
