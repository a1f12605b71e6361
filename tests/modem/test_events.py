"""Modem events are delivered by type through a registry whose handles remove
their listener (in ``finally``, by the owner), and a failing listener is contained."""

from __future__ import annotations

import logging

import pytest

from gsmgw.domain import ModemState
from gsmgw.modem import ALL_EVENT_TYPES, EventRegistry, Health, SmsIndication, StateChanged


def _state(new: ModemState = ModemState.READY) -> StateChanged:
    return StateChanged("sim1", ModemState.REGISTERING, new, "registered")


def test_listeners_get_only_the_types_they_registered_for() -> None:
    reg = EventRegistry("sim1")
    states: list[StateChanged] = []
    sms: list[SmsIndication] = []
    reg.register(StateChanged, states.append)
    reg.register(SmsIndication, sms.append)
    reg.emit(_state())
    reg.emit(SmsIndication("SM", 3, "sim1"))
    reg.emit(Health(csq=17, registration="registered, home", storage_used=1, storage_total=20))
    assert states == [_state()] and sms == [SmsIndication("SM", 3, "sim1")]


def test_a_removed_listener_hears_nothing_and_removal_is_idempotent() -> None:
    reg = EventRegistry("sim1")
    got: list[object] = []
    handle = reg.register(ALL_EVENT_TYPES, got.append)
    assert all(reg.listeners(tp) == 1 for tp in ALL_EVENT_TYPES)
    try:
        reg.emit(_state())
    finally:
        handle.remove()
    handle.remove()
    reg.emit(_state(ModemState.DISCONNECTED))
    assert got == [_state()]
    assert all(reg.listeners(tp) == 0 for tp in ALL_EVENT_TYPES)


def test_a_failing_listener_is_logged_and_the_others_still_hear(caplog: pytest.LogCaptureFixture) -> None:
    reg = EventRegistry("sim1")
    got: list[StateChanged] = []

    def broken(ev: StateChanged) -> None:
        raise RuntimeError("listener bug")

    reg.register(StateChanged, broken)
    reg.register(StateChanged, got.append)
    with caplog.at_level(logging.ERROR, logger="gsmgw.modem.events"):
        reg.emit(_state())
    assert got == [_state()]
    assert "listener bug" in caplog.text


def test_a_listener_may_remove_itself_while_being_called() -> None:
    reg = EventRegistry("sim1")
    got: list[str] = []

    def once(ev: StateChanged) -> None:
        got.append("once")
        handle.remove()

    handle = reg.register(StateChanged, once)
    reg.register(StateChanged, lambda ev: got.append("always"))
    reg.emit(_state())
    reg.emit(_state())
    assert got == ["once", "always", "always"]
