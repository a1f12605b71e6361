"""smpplib as a real ESME in a thread: a transmitter that submits, a receiver that collects."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import smpplib.client
import smpplib.consts
import smpplib.gsm


@dataclass
class Received:
    command: str
    esm_class: int
    source_addr: str
    destination_addr: str
    data_coding: int
    short_message: bytes
    receipted_message_id: str | None
    message_state: int | None
    message_payload: bytes | None
    at: float

    @property
    def text(self) -> str:
        data = self.message_payload or self.short_message
        if self.data_coding == 8:
            return data.decode("utf-16-be")
        return data.decode("latin-1")


def _s(v: Any) -> str:
    return v.decode("latin-1") if isinstance(v, bytes) else (v or "")


@dataclass
class Receiver:
    """bind_receiver (or transceiver) and collect deliver_sm until stopped."""

    host: str
    port: int
    system_id: str
    password: str
    mode: str = "receiver"
    got: list[Received] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _bound: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="smpplib-receiver", daemon=True)
        self._thread.start()
        if not self._bound.wait(10):
            raise AssertionError(f"receiver never bound: {self.errors}")

    def _on_pdu(self, pdu: Any) -> int:
        self.got.append(Received(
            pdu.command, int(pdu.esm_class or 0), _s(pdu.source_addr), _s(pdu.destination_addr),
            int(pdu.data_coding or 0), pdu.short_message or b"", _s(pdu.receipted_message_id) or None,
            pdu.message_state, pdu.message_payload, time.monotonic()))
        return smpplib.consts.SMPP_ESME_ROK

    def _run(self) -> None:
        # The bind waits as long as a bind may take (the password is an scrypt check: under
        # load, a 0.3 s socket timeout here failed the bind as "ConnectionError()"); only
        # then the short timeout that lets the read loop look at _stop.
        c = smpplib.client.Client(self.host, self.port, timeout=10, allow_unknown_opt_params=True)
        try:
            c.connect()
            getattr(c, f"bind_{self.mode}")(system_id=self.system_id, password=self.password)
            c._socket.settimeout(0.3)
            self._bound.set()
            c.set_message_received_handler(self._on_pdu)
            while not self._stop.is_set():
                try:
                    c.read_once(auto_send_enquire_link=False)
                except TimeoutError:
                    continue
            c.unbind()
        except Exception as exc:  # reported to the test
            self.errors.append(exc)
        finally:
            c.disconnect()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def wait_for(self, n: int, timeout_s: float = 20.0, *, kind: str | None = None) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while True:
            items = [r for r in self.got if kind is None or (kind == "receipt") == bool(r.esm_class & 0x04)]
            if len(items) >= n or time.monotonic() > deadline or self.errors:
                return items
            time.sleep(0.02)


def transmit(host: str, port: int, system_id: str, password: str, messages: list[tuple[str, str]],
             *, registered_delivery: int = 1) -> list[list[str]]:
    """bind_transmitter, submit each (to, text) the way smpplib's README does (split with
    UDH, GSM 03.38 or UCS-2), return the message ids of each message's parts."""
    c = smpplib.client.Client(host, port, timeout=10, allow_unknown_opt_params=True)
    ids: list[list[str]] = []
    try:
        c.connect()
        c.bind_transmitter(system_id=system_id, password=password)
        for to, text in messages:
            parts, coding, esm = smpplib.gsm.make_parts(text)
            got = []
            for part in parts:
                c.send_message(source_addr_ton=smpplib.consts.SMPP_TON_ALNUM, source_addr="Shop",
                               dest_addr_ton=smpplib.consts.SMPP_TON_INTL, dest_addr_npi=1,
                               destination_addr=to.lstrip("+"), short_message=part, data_coding=coding,
                               esm_class=esm, registered_delivery=registered_delivery)
                resp = c.read_pdu()
                assert resp.command == "submit_sm_resp", resp.command
                if resp.status != 0:
                    raise smpplib.exceptions.PDUError(f"submit refused: {resp.status}", int(resp.status))
                got.append(_s(resp.message_id))
            ids.append(got)
        c.unbind()
    finally:
        c.disconnect()
    return ids
