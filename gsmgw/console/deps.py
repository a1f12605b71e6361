"""What the console needs from the rest of the gateway, wired by gsmgw.daemon.

The console is a door: it signs people in, turns forms into plain values and hands
them to the intake service, like every other door. It reads through the store's
repositories and sees the modems through the callables below; it imports no
other door.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from gsmgw.config import Config
from gsmgw.intake import Caller, CancelResult, SendRequest, SubmitResult
from gsmgw.sms import Preview


class IntakePort(Protocol):
    """The parts of ``gsmgw.intake.IntakeService`` the console uses."""

    async def authenticate(self, secret: str | None) -> Caller | None: ...

    def take_request(self, caller: Caller) -> float: ...

    async def submit(self, caller: Caller, req: SendRequest) -> SubmitResult: ...

    async def cancel(self, caller: Caller, message_id: str) -> CancelResult: ...

    def preview(self, text: Any) -> Preview: ...


@dataclass
class ConsoleDeps:
    config: Callable[[], Config]
    intake: IntakePort
    store: Any  # gsmgw.store.Store
    # This host's modems, live (the pool's snapshot).
    modems: Callable[[], list[dict[str, Any]]]
    # Drain (False) or enable (True) one of this host's modems; False if there is none.
    set_modem_enabled: Callable[[str, bool], bool]
    # USSD on one modem: (modem id, code, timeout_s or None) -> the network's answer.
    ussd: Callable[[str, str, float | None], Awaitable[str]] | None = None
    # Balances found by the periodic check, per modem id.
    balances: Callable[[], dict[str, dict[str, Any]]] = dict
    # Check one modem's balance now (inbound.balance_ussd); None when not configured.
    check_balance: Callable[[str], Awaitable[dict[str, Any]]] | None = None
    # Restart one modem (close the port, bring it up again); None where the pool cannot.
    restart_modem: Callable[[str], Awaitable[bool]] | None = None
    host: str = "local"
    started_at: float = field(default_factory=time.time)


def may(caller: Caller, scope: str) -> bool:
    """``admin`` may do everything the other scopes allow (as through the API)."""
    return caller.may(scope)


__all__ = ["ConsoleDeps", "IntakePort", "may"]
