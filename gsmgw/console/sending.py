"""Sending from the console: a send request to the intake, as the signed-in key."""

from __future__ import annotations

from aiohttp import web

from gsmgw.console.core import console_of, request_session
from gsmgw.intake import SendRequest, SubmitResult


async def submit(request: web.Request, *, to: list[str], text: str, send_at: str | None, priority: str,
                 sim: str | None, idem: str, via: str) -> SubmitResult:
    """Hand a send request to the intake as the signed-in key; its ValidationError and
    AdmissionError propagate (the page shows them)."""
    c = console_of(request)
    caller = request_session(request).caller
    req = SendRequest(
        to=to, text=text, send_at=send_at, priority=priority, sim=sim,
        idempotency_key=f"console:{idem}" if idem else None,
        door="console", door_data={"via": via},
    )
    result: SubmitResult = await c.deps.intake.submit(caller, req)
    return result


__all__ = ["submit"]
