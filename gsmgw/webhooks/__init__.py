"""Webhooks: a durable outbox over the events table, signed JSON POSTs with retries."""

from gsmgw.webhooks.payload import event_matches, render_event
from gsmgw.webhooks.sender import WebhookSender
from gsmgw.webhooks.signing import SIGNATURE_HEADER, sign, signature_header, verify

__all__ = [
    "SIGNATURE_HEADER",
    "WebhookSender",
    "event_matches",
    "render_event",
    "sign",
    "signature_header",
    "verify",
]
