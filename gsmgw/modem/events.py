"""Events a :class:`~gsmgw.modem.Modem` reports upward (it never imports pool or store),
and the registry that delivers them to listeners by event type.

Every event carries the modem's name (``ModemConfig.id``, or the port when empty).

A listener is registered for one event type (or a few) and gets a handle; the
owner removes it in ``finally`` when it stops caring, so a replaced driver can
never call into a consumer that has moved on (zigpy-znp's ``api.py`` pattern)::

    handle = driver.events.register(StateChanged, on_state)
    try:
        await driver.run()
    finally:
        handle.remove()
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from gsmgw.domain import ModemIdentity, ModemState

log = logging.getLogger(__name__)


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

ALL_EVENT_TYPES: tuple[type[Any], ...] = (
    StateChanged, Identified, SmsIndication, SmsReceived, StatusReportReceived,
    StatusReportIndication, Health, StorageFull, PortLost,
)

E = TypeVar("E")


class Listener(Generic[E]):
    """The handle :meth:`EventRegistry.register` returns; ``remove()`` is idempotent."""

    __slots__ = ("_registry", "callback", "event_types")

    def __init__(self, registry: EventRegistry, event_types: tuple[type[Any], ...],
                 callback: Callable[[E], None]) -> None:
        self._registry = registry
        self.event_types = event_types
        self.callback = callback

    def remove(self) -> None:
        self._registry.remove(self)


class EventRegistry:
    """Listeners by exact event type. ``emit`` calls them in registration order; a
    listener that raises is logged and does not stop the others (nor the modem)."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._by_type: dict[type[Any], list[Listener[Any]]] = {}

    def register(self, event_types: type[E] | tuple[type[Any], ...], callback: Callable[[E], None]) -> Listener[E]:
        types_ = event_types if isinstance(event_types, tuple) else (event_types,)
        handle: Listener[E] = Listener(self, types_, callback)
        for tp in types_:
            self._by_type.setdefault(tp, []).append(handle)
        return handle

    def remove(self, handle: Listener[Any]) -> None:
        for tp in handle.event_types:
            listeners = self._by_type.get(tp)
            if listeners and handle in listeners:
                listeners.remove(handle)

    def listeners(self, event_type: type[Any]) -> int:
        """How many listeners ``event_type`` has (for tests and leak checks)."""
        return len(self._by_type.get(event_type, ()))

    def emit(self, event: object) -> None:
        # A copy: a listener may remove itself (or others) while being called.
        for handle in tuple(self._by_type.get(type(event), ())):
            try:
                handle.callback(event)
            except Exception:
                log.exception("%s: listener %r failed for %r", self.name, handle.callback, event)
