"""Waiting for an ``asyncio.Event`` with a timeout, in a task that may be cancelled.

Not ``asyncio.wait_for(event.wait(), timeout)``: on Python 3.11 ``wait_for`` swallows a
cancellation that arrives in the same loop turn as the event being set (the inner
``wait()`` finished first, so ``wait_for`` returns its result and the ``CancelledError``
is lost; fixed in 3.12, where ``wait_for`` is built on ``asyncio.timeout``). A service
loop parked there (``wait for a wake-up or the next poll``) then ignores its stop's
``cancel()`` and runs on, and the ``await gather(task)`` of the stop never returns: a
``notify()`` at the moment of a stop hung the gateway's shutdown
(``tests/mail/test_mail_out.py``, and ``tests/test_waits.py`` shows it on 3.11).
``asyncio.timeout`` tells its own cancellation from an outside one and lets the
outside one through.
"""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    """Until ``event`` is set (True) or ``timeout_s`` passed (False); a cancel always
    propagates. Does not clear the event."""
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(max(0.0, timeout_s)):
            await event.wait()
    except TimeoutError:
        return False
    return True


__all__ = ["wait_event"]
