"""The fake-modem emulator: AT interpreter, simulated network, behaviours, pty exposure.

Usable in-process from tests (:class:`PtyModem`, :class:`FakeModemPool`), as
``gsmgw fake-modem`` and as ``python -m gsmgw.emulator``.
"""

from gsmgw.emulator.behaviour import Behaviour
from gsmgw.emulator.messaging import SentRecord
from gsmgw.emulator.modem import EmulatedModem
from gsmgw.emulator.network import DeliveryRule, Network, OutboundRecord, parse_fail_rule
from gsmgw.emulator.personality import PERSONALITIES, Personality
from gsmgw.emulator.pty import FakeModemPool, PtyModem, modem_number
from gsmgw.emulator.storage import StoredSms
from gsmgw.emulator.transcript import (
    Transcript,
    TranscriptEntry,
    client_input,
    format_transcript,
    load_transcript,
    modem_output,
)

__all__ = [
    "PERSONALITIES",
    "Behaviour",
    "DeliveryRule",
    "EmulatedModem",
    "FakeModemPool",
    "Network",
    "OutboundRecord",
    "Personality",
    "PtyModem",
    "SentRecord",
    "StoredSms",
    "Transcript",
    "TranscriptEntry",
    "client_input",
    "format_transcript",
    "load_transcript",
    "modem_number",
    "modem_output",
    "parse_fail_rule",
]
