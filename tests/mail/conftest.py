"""A real SMTP server (aiosmtpd) on 127.0.0.1 that records the mail it accepts, and can
go down (its port closed) and come back on the same port."""

from __future__ import annotations

import asyncio
import email.policy
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        msg = BytesParser(policy=email.policy.default).parsebytes(self.raw)
        assert isinstance(msg, EmailMessage)
        return msg

    @property
    def body(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None
        return str(part.get_content()).replace("\r\n", "\n")  # type: ignore[attr-defined]


@dataclass
class MailServer:
    """Accepts every mail, except to addresses in ``refuse`` (550 at RCPT)."""

    host: str = "127.0.0.1"
    port: int = 0
    received: list[Received] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    _server: asyncio.Server | None = None
    _conns: list[SMTP] = field(default_factory=list)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        self.received.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), bytes(raw)))
        return "250 2.0.0 accepted"

    async def up(self) -> None:
        loop = asyncio.get_running_loop()

        def factory() -> SMTP:
            proto = SMTP(self, hostname="mail.test", loop=loop)
            self._conns.append(proto)
            return proto

        self._server = await loop.create_server(factory, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        if self._server is not None:
            self._server.close()
            for proto in self._conns:  # Python 3.11 has no Server.close_clients()
                if proto.transport is not None:
                    proto.transport.close()
            self._conns.clear()
            await self._server.wait_closed()
            self._server = None

    async def wait_for(self, n: int, timeout_s: float = 10.0) -> list[Received]:
        async with asyncio.timeout(timeout_s):
            while len(self.received) < n:
                await asyncio.sleep(0.01)
        return self.received


@pytest.fixture
async def mail_server() -> AsyncIterator[MailServer]:
    s = MailServer()
    await s.up()
    try:
        yield s
    finally:
        await s.down()


def free_port() -> Any:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
