"""The intake service: the one way a message enters the queue, whichever door it came through."""

from gsmgw.intake.service import IntakeService, plausible_secret
from gsmgw.intake.types import (
    Caller,
    CancelResult,
    IntakeObserver,
    Recipient,
    SendRequest,
    SubmitResult,
    SubmittedMessage,
)

__all__ = [
    "Caller",
    "CancelResult",
    "IntakeObserver",
    "IntakeService",
    "Recipient",
    "SendRequest",
    "SubmitResult",
    "SubmittedMessage",
    "plausible_secret",
]
