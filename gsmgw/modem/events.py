"""Events a :class:`~gsmgw.modem.Modem` reports upward (it never imports pool or store).

Every event carries the modem id (``ModemSettings.modem_id``, or the port when empty).
"""

from __future__ import annotations

from dataclasses import dataclass

from gsmgw.domain import ModemIdentity, ModemState


@dataclass(frozen=True, slots=True)
class StateChanged:
    modem: str  # modem id
    old: ModemState
    new: ModemState
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Identified:
    identity: ModemIdentity
    modem_id: str = ""


@dataclass(frozen=True, slots=True)
class SmsIndication:
    """``+CMTI: "SM",3``: a new SMS is stored at ``storage``/``index``."""

    storage: str
    index: int
    modem_id: str = ""


@dataclass(frozen=True, slots=True)
class SmsReceived:
    """``+CMT: ,24`` then the PDU: an SMS routed directly (acked with +CNMA if configured)."""

    pdu_hex: str
    tpdu_length: int
    modem_id: str = ""


@dataclass(frozen=True, slots=True)
class StatusReportReceived:
    """``+CDS: 25`` then the PDU: a status report routed directly."""

    pdu_hex: str
    tpdu_length: int
    modem_id: str = ""


@dataclass(frozen=True, slots=True)
class StatusReportIndication:
    """``+CDSI: "SR",0``: a status report is stored at ``storage``/``index``."""

    storage: str
    index: int
    modem_id: str = ""


@dataclass(frozen=True, slots=True)
class Health:
    csq: int | None  # +CSQ <rssi> 0..31, 99 unknown
    registration: str  # human-readable registration state ("registered, home")
    storage_used: int | None
    storage_total: int | None
    signal_dbm: int | None = None
    registered: bool = False
    modem_id: str = ""


@dataclass(frozen=True, slots=True)
class StorageFull:
    """The SMS storage is full (``+QIND: "smsfull","SM"``, ``^SMMEMFULL: "SM"``): sweep and delete."""

    storage: str
    modem_id: str = ""


@dataclass(frozen=True, slots=True)
class PortLost:
    reason: str
    modem_id: str = ""


ModemEvent = (
    StateChanged
    | Identified
    | SmsIndication
    | SmsReceived
    | StatusReportReceived
    | StatusReportIndication
    | Health
    | StorageFull
    | PortLost
)
