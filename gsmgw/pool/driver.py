"""What the pool needs of a modem driver, and how it makes one.

:class:`gsmgw.modem.Modem` is the real driver; tests inject their own through
``Pool(driver_factory=...)``. Everything the pool, the inbound processor and the
status-report reader call on a driver is in :class:`Driver`, so none of them
needs ``getattr`` or a ``type: ignore`` to reach it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from gsmgw.config import ModemConfig
from gsmgw.domain import ModemIdentity, ModemState, SendOutcome
from gsmgw.logs import AtTraceLogger
from gsmgw.modem import EventRegistry, Modem, ModemNotReady, StoredSms


@runtime_checkable
class Driver(Protocol):
    """One modem as the pool sees it (``gsmgw.modem.Modem`` satisfies it)."""

    state: ModemState
    identity: ModemIdentity
    # Where the driver reports StateChanged, Health, SmsIndication... by type.
    events: EventRegistry

    @property
    def csq(self) -> int | None:
        """Last +CSQ <rssi> (0..31, 99 unknown), ``None`` before the first poll."""
        ...

    async def run(self) -> None: ...
    async def stop(self) -> None: ...
    async def wait_ready(self, timeout_s: float) -> None: ...

    async def send_pdus(self, parts: Sequence[tuple[str, int]]) -> list[SendOutcome]:
        """Send one message's parts; raise ModemError only when nothing was written."""
        ...

    async def list_sms(self, stat: int = 4, storage: str | None = None) -> list[StoredSms]: ...
    async def read_sms(self, index: int, storage: str | None = None) -> StoredSms | None: ...
    async def delete_sms(self, index: int, storage: str | None = None) -> None: ...
    async def ussd(self, code: str, timeout_s: float = 15.0) -> str: ...


DriverFactory = Callable[[ModemConfig], Driver]


class NoPortYet:
    """Stands in for the driver of a modem known by IMEI/ICCID until its port is found."""

    def __init__(self, name: str) -> None:
        self.state = ModemState.DISCONNECTED
        self.identity = ModemIdentity()
        self.events = EventRegistry(name)
        self.csq: int | None = None
        self._why = f"{name}: no port found yet for this modem, nothing sent"

    async def run(self) -> None:  # pragma: no cover - never started
        return None

    async def stop(self) -> None:
        return None

    async def wait_ready(self, timeout_s: float) -> None:
        raise TimeoutError(self._why)

    async def send_pdus(self, parts: Sequence[tuple[str, int]]) -> list[SendOutcome]:
        raise ModemNotReady(self._why)

    async def list_sms(self, stat: int = 4, storage: str | None = None) -> list[StoredSms]:
        raise ModemNotReady(self._why)

    async def read_sms(self, index: int, storage: str | None = None) -> StoredSms | None:
        raise ModemNotReady(self._why)

    async def delete_sms(self, index: int, storage: str | None = None) -> None:
        raise ModemNotReady(self._why)

    async def ussd(self, code: str, timeout_s: float = 15.0) -> str:
        raise ModemNotReady(self._why)


def default_driver_factory(cfg: ModemConfig) -> Driver:
    # Raw AT traffic only at the trace level, redacted line by line.
    trace = AtTraceLogger(cfg.id, secrets=(cfg.pin,)) if AtTraceLogger.enabled() else None
    return Modem(cfg, trace=trace)


__all__ = ["Driver", "DriverFactory", "NoPortYet", "default_driver_factory"]
