"""Waiting for an ``asyncio.Event`` with a timeout, in a task that may be cancelled.

Not ``asyncio.wait_for(event.wait(), timeout)``: on Python 3.11 ``wait_for`` can lose a
cancellation (a known CPython race, gone in 3.12 where ``wait_for`` is built on
``asyncio.timeout``): one that comes in the same loop turn as the event being set
(the inner ``wait()`` finished first, so ``wait_for`` returns its result), and one
that comes while the timeout is cancelling the inner wait (it turns into a
``TimeoutError``, which these loops ignore). A service loop parked there (wait for a
wake-up or the next poll) then runs on after its stop's ``cancel()``, and the stop's
``await gather(task)`` never returns: with a 20 ms poll, the e-mail outbox consumer
hung a gateway's shutdown until the test's 60 s timeout
(``tests/mail/test_mail_out.py``; ``tests/test_waits.py`` shows it). ``asyncio.timeout``
tells its own cancellation from an outside one and lets the outside one through.
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
