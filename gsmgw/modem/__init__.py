"""The modem driver: device state machine, sequences as data, vendor quirks.

Imports ``at``, ``sms`` and ``transport``; never ``pool`` or ``store``: it reports
upward through events (:class:`EventRegistry` on ``Modem.events``).
"""

from gsmgw.modem.device import (
    Features,
    Modem,
    ModemNotReady,
    RegistrationTimeout,
    StoredSms,
)
from gsmgw.modem.events import (
    ALL_EVENT_TYPES,
    EventRegistry,
    Health,
    Identified,
    Listener,
    ModemEvent,
    PortLost,
    SmsIndication,
    SmsReceived,
    StateChanged,
    StatusReportIndication,
    StatusReportReceived,
    StorageFull,
)

__all__ = [
    "ALL_EVENT_TYPES",
    "EventRegistry",
    "Features",
    "Health",
    "Identified",
    "Listener",
    "Modem",
    "ModemEvent",
    "ModemNotReady",
    "PortLost",
    "RegistrationTimeout",
    "SmsIndication",
    "SmsReceived",
    "StateChanged",
    "StatusReportIndication",
    "StatusReportReceived",
    "StorageFull",
    "StoredSms",
]
