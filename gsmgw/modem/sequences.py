"""Command sequences as data: ``(command, timeout_s, optional)`` with fallbacks.

A :class:`Step` is tried alternative by alternative until one answers OK; if
none does and the step is not optional, bring-up fails. Vendor differences
live in :mod:`gsmgw.modem.quirks`, which swaps whole steps.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Step:
    commands: tuple[str, ...]  # the first alternative, then its fallbacks
    timeout_s: float = 2.0
    optional: bool = False
    why: str = ""

    @staticmethod
    def one(command: str, timeout_s: float = 2.0, optional: bool = False, why: str = "") -> Step:
        return Step((command,), timeout_s, optional, why)


# Before anything else: plain responses, no echo, numeric error codes.
BASIC_INIT: tuple[Step, ...] = (
    Step.one("ATE0", why="echo off (the channel tolerates echo either way)"),
    Step.one("ATV1", optional=True, why="verbose result codes: OK/ERROR, not 0/4"),
    Step(("AT+CMEE=1", "AT+CMEE=2"), optional=True, why="+CME ERROR: <code> instead of bare ERROR"),
)

# After the SIM is ready: the SMS service in PDU mode.
SMS_INIT: tuple[Step, ...] = (
    Step.one("AT+CMGF=0", why="PDU mode (TS 27.005 §3.2.3); gsmgw never uses text mode"),
    Step(("AT+CSMS=0",), optional=True, why="phase 2 semantics: no +CNMA needed for +CMT/+CDS"),
)

# URC enabling; +CREG=2 adds LAC/CI, fallback to 1 on modules that refuse 2.
URC_INIT: tuple[Step, ...] = (
    Step(("AT+CREG=2", "AT+CREG=1"), optional=True),
    Step(("AT+CGREG=2", "AT+CGREG=1"), optional=True),
    Step(("AT+CEREG=2", "AT+CEREG=1"), optional=True),
)

# New-message indications (TS 27.005 §3.4.1). The first accepted wins:
# 2,1,0,2,0: +CMTI for SMS, status reports stored and announced with +CDSI;
# 2,1,0,1,0: status reports routed directly as +CDS (no storage needed);
# 1,...: <mode>=1 for modules that refuse buffering in the TA (mode 2).
CNMI_DEFAULT: tuple[str, ...] = (
    "AT+CNMI=2,1,0,2,0",
    "AT+CNMI=2,1,0,1,0",
    "AT+CNMI=1,1,0,2,0",
    "AT+CNMI=1,1,0,1,0",
    "AT+CNMI=2,1,0,0,0",
    "AT+CNMI=1,1,0,0,0",
)

# With ack_cmt: SMS and status reports delivered directly (+CMT/+CDS) and
# acknowledged with AT+CNMA (needs AT+CSMS=1, TS 27.005 §3.4.4).
CNMI_DIRECT: tuple[str, ...] = (
    "AT+CNMI=2,2,0,1,0",
    "AT+CNMI=1,2,0,1,0",
)

REGISTRATION_QUERIES: tuple[str, ...] = ("AT+CREG?", "AT+CGREG?", "AT+CEREG?")

# SIM states reported by AT+CPIN? that need the PIN / are hopeless.
CPIN_NEEDS_PIN = "SIM PIN"
CPIN_HOPELESS = ("SIM PUK", "SIM PIN2", "SIM PUK2", "PH-SIM PIN", "PH-NET PIN", "NOT INSERTED", "SIM FAILURE")
# +CME ERROR codes meaning "SIM not ready yet, ask again" (TS 27.007 §9.2.1):
# 14 SIM busy, 515 (vendor) please wait / init in progress.
CME_SIM_BUSY = frozenset({14, 515})
# 10 SIM not inserted, 13 SIM failure, 11 SIM PIN required, 12 SIM PUK required, 16 incorrect password.
CME_SIM_NOT_INSERTED = frozenset({10, 13})
CME_INCORRECT_PASSWORD = 16

# --- boot and readiness (issue 16) -----------------------------------------------------
# URC names (gsmgw.at.urc) a module prints while it boots: RDY (SIM800/SIM7600/EC25 UART
# ready), +CPIN: READY, Call Ready / SMS Ready (SIM800 manual, URC summary), SMS DONE /
# PB DONE (SIM7600), +QIND: SMS DONE / PB DONE (EC25), ^SYSSTART / ^BOOT (Huawei). Each
# one wakes a bring-up that is waiting for the SMS service, so it retries at once.
READINESS_URCS = frozenset(
    {"RDY", "CPIN", "CALL_READY", "SMS_READY", "SMS_DONE", "PB_DONE", "PBREADY", "QIND", "HW_SYSSTART", "HW_BOOT"}
)
# +CMS ERROR codes (TS 27.005 §3.2.5) meaning "the SMS service is not there yet": 302
# operation not allowed, 310/313/314/315 SIM not inserted/failure/busy/wrong while the
# SIM initialises, 320 memory failure, 500 unknown, 512-515 vendor "please wait"
# (SIMCom/Quectel: 515 "init or command processing in progress").
CMS_NOT_READY = frozenset({302, 310, 313, 314, 315, 320, 500, 512, 513, 514, 515})
# Plain ERROR or these codes right after "+CMTI"/"+CDSI" mean the message is not readable
# yet (321: the module announced the index before its write completed): read again.
CMS_READ_TRANSIENT = CMS_NOT_READY | {321}
# Backoff while the SMS service boots (seconds, doubled up to the cap; any readiness URC
# cuts the wait short). The whole wait is bounded by ModemConfig.sim_ready_timeout_s.
SMS_READY_BACKOFF_S = (0.25, 2.0)
