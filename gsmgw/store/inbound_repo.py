"""Store methods for inbound SMS, opt-out and the webhook outbox (mixed into Store)."""

from __future__ import annotations


class InboundRepo:
    """Mixin: ``Store`` inherits these; they use ``self.engine`` like the rest of the store."""
