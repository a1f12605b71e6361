"""Sending from the console: a send request to the intake, as the signed-in key."""

from __future__ import annotations

from typing import Any

from aiohttp import web

import gsmgw.errors as errors
from gsmgw.console.core import console_of, request_session

# Valid input the gateway will not take now (rate, quota, full queue); the intake's.
AdmissionError: type[Exception] = getattr(errors, "AdmissionError", errors.ValidationError)


async def submit(request: web.Request, *, to: list[str], text: str, send_at: str | None, priority: str,
                 sim: str | None, idem: str, via: str) -> Any:
    """Hand a send request to the intake as the signed-in key; the intake's errors propagate."""
    from gsmgw.intake import SendRequest

    c = console_of(request)
    caller = request_session(request).caller
    req = SendRequest(
        to=to, text=text, send_at=send_at, priority=priority, sim=sim,
        idempotency_key=f"console:{idem}" if idem else None,
        door="console", door_data={"via": via},
    )
    return await c.deps.intake.submit(caller, req)


__all__ = ["AdmissionError", "submit"]
