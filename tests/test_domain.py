"""EventType: the outbox's event names in one enum, equal to the wire strings."""

from __future__ import annotations

import pytest

from gsmgw.domain import EventType, MessageState, event_family
from gsmgw.webhooks import event_matches


def test_message_events_follow_the_message_state() -> None:
    for state in (MessageState.SENT, MessageState.DELIVERED, MessageState.FAILED, MessageState.UNKNOWN,
                  MessageState.EXPIRED, MessageState.CANCELLED):
        ev = EventType.for_message(state)
        assert ev == f"sms:{state.value}" and ev.family == "sms"
    with pytest.raises(ValueError):
        EventType.for_message(MessageState.QUEUED)  # a requeue is no event


def test_types_are_the_strings_receivers_subscribe_to() -> None:
    assert EventType.SIM_STORAGE_FULL == "sim:storage-full" and event_family("sim:storage-full") == "sim"
    assert event_matches(["sms:*"], EventType.SMS_RECEIVED)
    assert not event_matches(["modem:*"], EventType.BALANCE_LOW)
    # Inbound rules' hand-offs to doors (issue 19) are named as the helpers' contract says
    # ("rule.mqtt"): not a family receivers subscribe to (webhooks never fan them out).
    rule_types = {EventType.RULE_MQTT, EventType.RULE_EMAIL, EventType.RULE_WEBHOOK}
    assert {str(e) for e in rule_types} == {"rule.mqtt", "rule.email", "rule.webhook"}
    assert {e.family for e in EventType if e not in rule_types} == {"sms", "optout", "modem", "sim", "balance", "ussd"}
