"""Behaviours and faults of one emulated modem (design.md §9: the fake modem is a family of behaviours).

A :class:`Behaviour` is a plain mutable dataclass: tests flip fields at run time
(``modem.behaviour.hang_on_submit = True``) and the interpreter reads them at the
moment they matter, so a change takes effect on the next command.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

# TS 27.005 §3.2.5 <err> values used by the submit faults.
CMS_TRANSIENT_CODES = frozenset({42, 47, 331, 332, 500, 512, 513, 514, 515})
"""Codes a gateway may retry: congestion, resources unavailable, no network service,
network timeout, unknown error, and the vendor-range transient codes used by
SIMCom/Quectel (512+ "manufacturer specific")."""


@dataclass
class Behaviour:
    """What an emulated modem does besides answering correctly.

    Latencies are seconds; tests keep them in milliseconds.
    """

    # --- submit (AT+CMGS / AT+CMSS) -------------------------------------------------
    send_latency_s: float = 0.0
    """Fixed delay between Ctrl-Z and ``+CMGS: <mr>`` (the radio round trip)."""
    send_latency_jitter_s: float = 0.0
    """Uniform extra delay in ``[0, jitter]`` added to ``send_latency_s``."""
    send_latency_distribution: Callable[[random.Random], float] | None = None
    """If set, overrides the two fields above: called with the modem's RNG, returns seconds."""
    cms_error_on_submit: int | None = None
    """Answer ``+CMS ERROR: <code>`` instead of sending (e.g. 500 transient, 21 permanent)."""
    cms_error_first_n: int | None = None
    """Only the first N submits fail with ``cms_error_on_submit``; ``None`` means all of them."""
    hang_on_submit: bool = False
    """Never answer the submit (no +CMGS, no error); the next command line is served normally.
    The gateway must time out and mark the part unknown."""
    hang_after_sending: bool = False
    """With ``hang_on_submit``: the SMS did go out (it is in ``modem.sent`` and reaches the
    recipient) and only the answer was lost, so a blind resend would duplicate it."""
    drop_port_on_submit: bool = False
    """The port vanishes after the PDU is received and before the final result."""
    drop_port_on_command: str | None = None
    """The port vanishes while this command (e.g. ``"+CMGL"``) is being answered, after a partial reply."""
    replug_after_s: float | None = None
    """After a drop, the modem comes back (new pty, same symlink) after this many seconds."""

    # --- line noise ----------------------------------------------------------------
    garbage_before_response: bytes = b""
    """Bytes written before every response (line noise, a stray boot banner)."""
    urc_in_response: str | None = None
    """A URC line emitted in the middle of a multi-line response (between info lines)."""
    urc_after_prompt: str | None = None
    """A URC line emitted right after the ``> `` prompt, before the client sends the PDU."""
    trickle_s: float | None = None
    """Write output one byte at a time with this pause between bytes."""
    echo: bool | None = None
    """Initial echo (``None``: the personality's default, which is on for all real modules)."""

    # --- radio / SIM -----------------------------------------------------------------
    registration: int = 1
    """+CREG <stat> the modem reaches after boot: 1 home, 5 roaming, 0 none, 2 searching, 3 denied."""
    registration_delay_s: float = 0.0
    """Time from boot / PIN entry / CFUN=1 to the registration URC."""
    rssi: int = 20
    """+CSQ <rssi> (0..31, 99 unknown)."""
    storage_full: bool = False
    """Fill the SIM/ME storage at start so that inbound SMS hit the full-memory path."""
    boot_delay_s: float = 0.0
    """Delay before the boot URCs (RDY, Call Ready, ...) after power-on or ``AT+CFUN=1,1``."""
    cnma_timeout_s: float = 15.0
    """How long a directly routed +CMT/+CDS waits for +CNMA before routing is disabled (27.005 §3.4.4)."""
    ussd_reply: str = "Your balance is 12.34 EUR. Valid until 31.12.2027."

    # --- boot and storage timing (issue 16) ------------------------------------------
    sms_ready_delay_s: float = 0.0
    """After each boot, SMS commands answer ERROR for this long; then the personality's
    SMS-ready URC (SIM800 "SMS Ready") is printed and they work."""
    urc_storm: int | None = None
    """URC lines (``^RSSI``/``^MODE``-style) written between every response and its OK and
    before every ``> `` prompt (``None``: the personality's default; 0 none)."""
    transient_read_error: int | None = None
    """The first ``AT+CMGR`` of an index just announced by +CMTI/+CDSI answers
    ``+CMS ERROR: <code>`` (e.g. 321: the module announced it before the write completed)."""

    # --- internal counters ---------------------------------------------------------
    submits_seen: int = field(default=0, compare=False)

    def submit_latency_s(self, rng: random.Random) -> float:
        if self.send_latency_distribution is not None:
            return max(0.0, float(self.send_latency_distribution(rng)))
        jitter = rng.uniform(0.0, self.send_latency_jitter_s) if self.send_latency_jitter_s else 0.0
        return max(0.0, self.send_latency_s + jitter)

    def submit_error(self) -> int | None:
        """The CMS code for the current submit (call once per submit, after counting it)."""
        if self.cms_error_on_submit is None:
            return None
        if self.cms_error_first_n is not None and self.submits_seen > self.cms_error_first_n:
            return None
        return self.cms_error_on_submit
