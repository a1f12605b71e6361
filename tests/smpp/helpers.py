"""Test doubles and clients for the SMPP door."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import struct
from dataclasses import dataclass, field
from typing import Any

import smpplib.client

from gsmgw.errors import SmppError
from gsmgw.smpp import Submitted
from gsmgw.smpp.accounts import Account
from gsmgw.smpp.pdu import Pdu, decode, encode
from gsmgw.smpp.submit import Submission


@dataclass
class FakePort:
    """The intake service as the SMPP server sees it, recording what it is given."""

    submissions: list[tuple[str, Submission]] = field(default_factory=list)
    refuse: SmppError | None = None
    wait_s: float = 0.0
    gate: asyncio.Event | None = None
    cancelled: list[str] = field(default_factory=list)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    by_key: dict[str, Submitted] = field(default_factory=dict)

    def take_request(self, account: Account) -> float:
        return self.wait_s

    async def submit(self, account: Account, sub: Submission) -> Submitted:
        if self.gate is not None:
            await self.gate.wait()
        if self.refuse is not None:
            raise self.refuse
        if sub.idempotency_key and sub.idempotency_key in self.by_key:
            return self.by_key[sub.idempotency_key]
        self.submissions.append((account.system_id, sub))
        ids = tuple(f"msg{next(self._ids):04d}" for _ in sub.to)
        res = Submitted(ids, ids[0] if len(ids) == 1 else f"batch-{ids[0]}")
        if sub.idempotency_key:
            self.by_key[sub.idempotency_key] = res
        return res

    async def cancel(self, account: Account, message_id: str) -> bool:
        self.cancelled.append(message_id)
        return message_id.startswith("msg")


class RawEsme:
    """A bare ESME over asyncio, speaking PDUs through gsmgw's codec (for what
    smpplib refuses to send: wrong states, floods, garbage)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.seq = 0

    @classmethod
    async def connect(cls, port: int, **kw: Any) -> RawEsme:
        r, w = await asyncio.open_connection("127.0.0.1", port, **kw)
        return cls(r, w)

    def send(self, pdu: Pdu) -> int:
        if not pdu.sequence_number:
            self.seq += 1
            pdu.sequence_number = self.seq
        self.writer.write(encode(pdu))
        return pdu.sequence_number

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    async def read(self, timeout_s: float = 5.0) -> Pdu:
        head = await asyncio.wait_for(self.reader.readexactly(16), timeout_s)
        (length,) = struct.unpack(">I", head[:4])
        body = await asyncio.wait_for(self.reader.readexactly(length - 16), timeout_s)
        return decode(head + body)

    async def call(self, pdu: Pdu, timeout_s: float = 5.0) -> Pdu:
        self.send(pdu)
        return await self.read(timeout_s)

    async def closed(self, timeout_s: float = 5.0) -> bool:
        """True once the server closed the connection (EOF)."""
        try:
            while True:
                data = await asyncio.wait_for(self.reader.read(65536), timeout_s)
                if not data:
                    return True
        except (ConnectionError, OSError):
            return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


def smpplib_client(port: int, **kw: Any) -> smpplib.client.Client:
    c = smpplib.client.Client("127.0.0.1", port, timeout=5, allow_unknown_opt_params=True, **kw)
    c.connect()
    return c


def submit_params(to: str = "447700900123", text: bytes = b"hello", **over: Any) -> dict[str, Any]:
    p: dict[str, Any] = {"service_type": "", "source_addr_ton": 5, "source_addr_npi": 0, "source_addr": "Shop",
                         "dest_addr_ton": 1, "dest_addr_npi": 1, "destination_addr": to, "esm_class": 0,
                         "protocol_id": 0, "priority_flag": 0, "schedule_delivery_time": "",
                         "validity_period": "", "registered_delivery": 1, "replace_if_present_flag": 0,
                         "data_coding": 0, "sm_default_msg_id": 0, "short_message": text}
    p.update(over)
    return p


def bind_params(system_id: str, password: str) -> dict[str, Any]:
    return {"system_id": system_id, "password": password, "system_type": "", "interface_version": 0x34,
            "addr_ton": 0, "addr_npi": 0, "address_range": ""}
