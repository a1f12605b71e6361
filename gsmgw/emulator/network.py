"""The simulated mobile network: routes SMS between emulated SIMs and sends status reports.

An SMS to the number of another emulated SIM arrives there as an SMS-DELIVER (every
part separately, UDH preserved). An SMS to any other number "leaves" the network and is
kept in :attr:`Network.outbound`. Either way, if the submit asked for a status report,
one is sent to the sender after ``report_delay_s`` with a TP-ST chosen by the delivery
rules (TS 23.040 §9.2.3.15).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gsmgw.sms import encode_status_report, submit_to_deliver

if TYPE_CHECKING:
    from gsmgw.emulator.modem import EmulatedModem

# TS 23.040 §9.2.3.15 TP-Status values used here.
TP_ST_DELIVERED = 0x00
TP_ST_INCOMPATIBLE_DESTINATION = 0x41
TP_ST_NO_RESPONSE_FROM_SME_FINAL = 0x62
"""Temporary error, SC not making any more transfer attempts: no response from SME.
Used when an emulated recipient could not store the SMS (memory full, switched off)."""


@dataclass(frozen=True, slots=True)
class DeliveryRule:
    """Destinations fully matching ``pattern`` (a regex on the E.164 number) get ``status``."""

    pattern: str
    status: int

    def matches(self, destination: str) -> bool:
        return re.fullmatch(self.pattern, destination) is not None


DeliveryRuleSpec = Callable[[str], int] | Sequence[DeliveryRule] | None


def parse_fail_rule(spec: str) -> DeliveryRule:
    """Parse a CLI rule ``REGEX[=STATUS]`` (STATUS decimal or 0x.., default 0x41)."""
    pattern, sep, status_text = spec.rpartition("=")
    if not sep:
        pattern, status_text = spec, "0x41"
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"fail rule {spec!r}: bad regex: {exc}") from exc
    try:
        status = int(status_text, 0)
    except ValueError as exc:
        raise ValueError(f"fail rule {spec!r}: status must be an integer like 0x41") from exc
    if not 0 <= status <= 0xFF:
        raise ValueError(f"fail rule {spec!r}: status must be 0..255")
    return DeliveryRule(pattern, status)


@dataclass
class OutboundRecord:
    """An SMS that left the emulated network (recipient not an emulated SIM)."""

    sender: str
    destination: str
    tp_mr: int
    status: int
    submit: Any
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


class Network:
    def __init__(
        self,
        *,
        report_delay_s: float = 0.05,
        delivery_rule: DeliveryRuleSpec = None,
        delivery_delay_s: float = 0.0,
        smsc: str = "+15550009999",
        operator: str = "Emulated Mobile",
        operator_short: str = "EmuMob",
        mcc_mnc: str = "00101",
    ) -> None:
        self.report_delay_s = report_delay_s
        self.delivery_delay_s = delivery_delay_s
        self.delivery_rule = delivery_rule
        self.smsc = smsc
        self.operator = operator
        self.operator_short = operator_short
        self.mcc_mnc = mcc_mnc
        self.subscribers: dict[str, EmulatedModem] = {}
        self.outbound: list[OutboundRecord] = []
        self._tasks: set[asyncio.Task[None]] = set()

    # --- subscribers ---------------------------------------------------------------

    def attach(self, modem: EmulatedModem) -> None:
        if modem.number in self.subscribers and self.subscribers[modem.number] is not modem:
            raise ValueError(f"number {modem.number} is already used by another emulated SIM")
        self.subscribers[modem.number] = modem

    def detach(self, modem: EmulatedModem) -> None:
        if self.subscribers.get(modem.number) is modem:
            del self.subscribers[modem.number]

    def status_for(self, destination: str) -> int:
        rule = self.delivery_rule
        if rule is None:
            return TP_ST_DELIVERED
        if callable(rule):
            return int(rule(destination))
        for r in rule:
            if r.matches(destination):
                return r.status
        return TP_ST_DELIVERED

    # --- traffic ---------------------------------------------------------------------

    def submit(self, sender: EmulatedModem, submit: Any, tp_mr: int) -> None:
        """Called by a modem once it has accepted an SMS-SUBMIT and assigned ``tp_mr``."""
        self._spawn(self._route(sender, submit, tp_mr))

    async def _route(self, sender: EmulatedModem, submit: Any, tp_mr: int) -> None:
        submitted_at = datetime.now(UTC)
        destination = _normalise(submit.destination)
        if self.delivery_delay_s:
            await asyncio.sleep(self.delivery_delay_s)
        target = self.subscribers.get(destination)
        if target is not None:
            deliver_hex = submit_to_deliver(
                submit, originator=sender.number, scts=submitted_at, smsc=self.smsc
            )
            accepted = target.deliver_from_network(deliver_hex)
            status = TP_ST_DELIVERED if accepted else TP_ST_NO_RESPONSE_FROM_SME_FINAL
            rule_status = self.status_for(destination)
            if rule_status != TP_ST_DELIVERED:
                status = rule_status
        else:
            status = self.status_for(destination)
            self.outbound.append(
                OutboundRecord(sender.number, destination, tp_mr, status, submit, submitted_at)
            )
        if not submit.status_report_requested:
            return
        await asyncio.sleep(self.report_delay_s)
        report_hex = encode_status_report(
            tp_mr=tp_mr,
            recipient=destination,
            scts=submitted_at,
            discharge_time=datetime.now(UTC),
            status=status,
            smsc=self.smsc,
        )
        sender.deliver_status_report(report_hex)

    def ussd(self, code: str, reply_text: str) -> str | None:
        """The network's answer to a USSD string, ``None`` if the code is unknown."""
        if code in {"*100#", "*101#", "#100#", "*#100#"}:
            return reply_text
        if code in {"*102#", "*#62#"}:
            return f"Your number is {self.operator}."
        return None

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Wait until every in-flight delivery and report has happened (tests)."""
        async with asyncio.timeout(timeout_s):
            while self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)


def _normalise(number: str) -> str:
    number = number.strip()
    if number and number[0].isdigit() and len(number) > 8:
        return "+" + number
    return number
