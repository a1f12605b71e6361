"""The modem driver: device state machine, sequences as data, vendor quirks.

Imports ``at``, ``sms`` and ``transport``; never ``pool`` or ``store``: it reports
upward through the ``on_event`` callback.
"""

from gsmgw.modem.device import (
    Features,
    Modem,
    ModemNotReady,
    ModemSettings,
    RegistrationTimeout,
    StoredSms,
)
from gsmgw.modem.events import (
    Health,
    Identified,
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
    "Features",
    "Health",
    "Identified",
    "Modem",
    "ModemEvent",
    "ModemNotReady",
    "ModemSettings",
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
