"""Garbage on the wire: answered or closed, logged in one line, never a traceback."""

from __future__ import annotations

import logging
import random
import struct

import pytest

from gsmgw.smpp import SmppServer
from gsmgw.smpp.constants import Command, Status
from gsmgw.smpp.pdu import Pdu, encode
from tests.smpp.conftest import PASSWORD
from tests.smpp.helpers import RawEsme, bind_params, submit_params


def _mutations(rng: random.Random, n: int) -> list[bytes]:
    base = [encode(Pdu(Command.SUBMIT_SM, 1, 0, submit_params(esm_class=0x40, text=b"\x05\x00\x03\x01\x02\x01hi"))),
            encode(Pdu(Command.ENQUIRE_LINK, 2)), encode(Pdu(Command.SUBMIT_SM, 3, 0, submit_params()))]
    out = []
    for _ in range(n):
        raw = bytearray(rng.choice(base))
        for _ in range(rng.randint(1, 5)):
            i = rng.randrange(4, len(raw))  # keep command_length: the stream stays in step
            raw[i] = rng.randrange(256)
        out.append(bytes(raw))
    return out


@pytest.mark.timeout(60)
async def test_mutated_pdus_never_raise(server: SmppServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    rng = random.Random(22)
    esme = await RawEsme.connect(server.port_number)
    try:
        assert (await esme.call(Pdu(Command.BIND_TRANSCEIVER, 0, 0, bind_params("esme", PASSWORD)))).command_status == 0
        answered = 0
        for raw in _mutations(rng, 400):
            esme.send_raw(raw)
            (cid,) = struct.unpack(">I", raw[4:8])
            if cid & 0x80000000:
                continue  # a response to nothing: dropped silently
            r = await esme.read()
            assert r.command_id & 0x80000000
            answered += 1
        assert answered > 100
        # Still serving.
        assert (await esme.call(Pdu(Command.ENQUIRE_LINK, 0))).command_status == Status.ROK
    finally:
        await esme.close()
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad[:3]]
    assert all("\n" not in r.getMessage() for r in caplog.records)


@pytest.mark.timeout(60)
async def test_random_streams_close_cleanly(server: SmppServer, caplog: pytest.LogCaptureFixture) -> None:
    rng = random.Random(7)
    for _ in range(30):
        esme = await RawEsme.connect(server.port_number)
        try:
            esme.send_raw(rng.randbytes(rng.randint(1, 300)))
            assert await esme.closed(timeout_s=10)  # a nack and a close, or the bind timer
        finally:
            await esme.close()
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad[:3]]
