"""Sessions against smpplib and a raw ESME: binds, states, windows, garbage, timers, TLS."""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
import subprocess
from pathlib import Path

import pytest
import smpplib.consts
import smpplib.exceptions

from gsmgw.config import SmppConfig
from gsmgw.errors import SmppError
from gsmgw.smpp import SmppServer
from gsmgw.smpp.accounts import hash_password
from gsmgw.smpp.constants import Command, Status, Tag
from gsmgw.smpp.pdu import Pdu
from gsmgw.store import Store
from tests.smpp.conftest import PASSWORD, with_cfg
from tests.smpp.helpers import FakePort, RawEsme, bind_params, smpplib_client, submit_params


async def test_smpplib_binds_submits_and_unbinds(server: SmppServer, port: FakePort) -> None:
    def esme() -> tuple[bytes, int]:
        c = smpplib_client(server.port_number)
        try:
            resp = c.bind_transmitter(system_id="esme", password=PASSWORD)
            assert resp.system_id == b"gsmgw"
            c.send_message(source_addr_ton=5, source_addr="Shop", dest_addr_ton=1, dest_addr_npi=1,
                           destination_addr="447700900123", short_message=b"Hello \x00 world",
                           registered_delivery=1)
            sent = c.read_pdu()
            link = smpplib.smpp.make_pdu("enquire_link", client=c)
            c.send_pdu(link)
            assert c.read_pdu().command == "enquire_link_resp"
            unbound = c.unbind()
            return sent.message_id, unbound.status
        finally:
            c.disconnect()

    message_id, unbind_status = await asyncio.to_thread(esme)
    assert message_id == b"msg0001" and unbind_status == 0
    system_id, sub = port.submissions[0]
    assert system_id == "esme" and sub.to == ("+447700900123",) and sub.text == "Hello @ world"
    assert sub.door_data["rd"] == 1 and sub.door_data["src"] == ["Shop", 5, 0]


async def test_wrong_password_and_unknown_account_both_bind_fail(server: SmppServer) -> None:
    def esme(system_id: str, password: str) -> int:
        c = smpplib_client(server.port_number)
        try:
            c.bind_transceiver(system_id=system_id, password=password)
        except smpplib.exceptions.PDUError as exc:
            return int(exc.args[1])
        finally:
            c.disconnect()
        return 0

    assert await asyncio.to_thread(esme, "esme", "wrong") == Status.RBINDFAIL
    assert await asyncio.to_thread(esme, "nobody", PASSWORD) == Status.RBINDFAIL


async def test_states_are_enforced(server: SmppServer) -> None:
    esme = await RawEsme.connect(server.port_number)
    try:
        r = await esme.call(Pdu(Command.SUBMIT_SM, 0, 0, submit_params()))
        assert (r.command, r.command_status) == (Command.SUBMIT_SM_RESP, Status.RINVBNDSTS)
        r = await esme.call(Pdu(Command.UNBIND, 0))
        assert r.command_status == Status.RINVBNDSTS
        r = await esme.call(Pdu(Command.ENQUIRE_LINK, 0))  # allowed before a bind
        assert r.command_status == Status.ROK
        r = await esme.call(Pdu(Command.BIND_RECEIVER, 0, 0, bind_params("esme", PASSWORD)))
        assert r.command_status == Status.ROK and r.tlvs[Tag.SC_INTERFACE_VERSION] == b"\x34"
        r = await esme.call(Pdu(Command.BIND_TRANSMITTER, 0, 0, bind_params("esme", PASSWORD)))
        assert r.command_status == Status.RALYBND
        r = await esme.call(Pdu(Command.SUBMIT_SM, 0, 0, submit_params()))  # a receiver may not submit
        assert r.command_status == Status.RINVBNDSTS
        r = await esme.call(Pdu(Command.QUERY_SM, 0, 0, {"message_id": "x", "source_addr": ""}))
        assert (r.command, r.command_status) == (Command.GENERIC_NACK, Status.RINVCMDID)
        r = await esme.call(Pdu(Command.UNBIND, 0))
        assert (r.command, r.command_status) == (Command.UNBIND_RESP, Status.ROK)
        assert await esme.closed()
    finally:
        await esme.close()


async def _bound(server: SmppServer, command: Command = Command.BIND_TRANSMITTER) -> RawEsme:
    esme = await RawEsme.connect(server.port_number)
    r = await esme.call(Pdu(command, 0, 0, bind_params("esme", PASSWORD)))
    assert r.command_status == Status.ROK
    return esme


async def test_window_overflow_is_throttled(server: SmppServer, port: FakePort) -> None:
    port.gate = asyncio.Event()  # the intake holds every submit until released
    esme = await _bound(server)
    try:
        seqs = [esme.send(Pdu(Command.SUBMIT_SM, 0, 0, submit_params())) for _ in range(11)]
        first = await esme.read()
        assert (first.sequence_number, first.command_status) == (seqs[-1], Status.RTHROTTLED)
        port.gate.set()
        rest = [await esme.read() for _ in range(10)]
        assert sorted(r.sequence_number for r in rest) == seqs[:10]
        assert {r.command_status for r in rest} == {Status.ROK}
    finally:
        await esme.close()


async def test_rate_limit_and_refusals_map_to_statuses(server: SmppServer, port: FakePort) -> None:
    esme = await _bound(server)
    try:
        port.wait_s = 0.5
        r = await esme.call(Pdu(Command.SUBMIT_SM, 0, 0, submit_params()))
        assert r.command_status == Status.RTHROTTLED
        port.wait_s = 0.0
        port.refuse = SmppError("queue full", status=Status.RMSGQFUL)
        assert (await esme.call(Pdu(Command.SUBMIT_SM, 0, 0, submit_params()))).command_status == Status.RMSGQFUL
        port.refuse = None
        r = await esme.call(Pdu(Command.SUBMIT_SM, 0, 0, submit_params(data_coding=4)))
        assert r.command_status == Status.RINVDCS
        r = await esme.call(Pdu(Command.SUBMIT_SM, 0, 0, submit_params(to="")))
        assert r.command_status == Status.RINVDSTADR
        assert port.submissions == []
    finally:
        await esme.close()


async def test_garbage_gets_generic_nack_and_a_close(server: SmppServer) -> None:
    esme = await _bound(server)
    try:
        # An unknown command_id with a sane length: generic_nack, and the session goes on.
        esme.send_raw(bytes.fromhex("00000010" "000000ff" "00000000" "00000063"))
        r = await esme.read()
        assert (r.command, r.command_status, r.sequence_number) == (Command.GENERIC_NACK, Status.RINVCMDID, 0x63)
        # A malformed body of a known request: its own response with the field's status.
        esme.send_raw(bytes.fromhex("00000013" "00000004" "00000000" "00000064" "000101"))
        r = await esme.read()
        assert (r.command, r.command_status) == (Command.SUBMIT_SM_RESP, Status.RINVMSGLEN)
        assert (await esme.call(Pdu(Command.ENQUIRE_LINK, 0))).command_status == Status.ROK
        # A length that cannot be trusted: generic_nack and the connection closes.
        esme.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        r = await esme.read()
        assert (r.command, r.command_status) == (Command.GENERIC_NACK, Status.RINVCMDLEN)
        assert await esme.closed()
    finally:
        await esme.close()


async def test_bind_limit(sqlite_store: Store, server: SmppServer) -> None:
    sqlite_store.smpp.create_account("solo", hash_password("pw"), ["send"], max_binds=1)
    a = await RawEsme.connect(server.port_number)
    b = await RawEsme.connect(server.port_number)
    try:
        assert (await a.call(Pdu(Command.BIND_TRANSMITTER, 0, 0, bind_params("solo", "pw")))).command_status == 0
        r = await b.call(Pdu(Command.BIND_TRANSMITTER, 0, 0, bind_params("solo", "pw")))
        assert r.command_status == Status.RBINDFAIL
        await a.call(Pdu(Command.UNBIND, 0))
        assert await a.closed()
        await asyncio.sleep(0.05)
        assert (await b.call(Pdu(Command.BIND_TRANSMITTER, 0, 0, bind_params("solo", "pw")))).command_status == 0
    finally:
        await a.close()
        await b.close()


async def test_scopes_decide_bind_modes(sqlite_store: Store, server: SmppServer) -> None:
    sqlite_store.smpp.create_account("reader", hash_password("pw"), ["read"])
    esme = await RawEsme.connect(server.port_number)
    try:
        r = await esme.call(Pdu(Command.BIND_TRANSMITTER, 0, 0, bind_params("reader", "pw")))
        assert r.command_status == Status.RBINDFAIL
        r = await esme.call(Pdu(Command.BIND_RECEIVER, 0, 0, bind_params("reader", "pw")))
        assert r.command_status == Status.ROK
    finally:
        await esme.close()


async def test_revoked_account_cannot_bind(sqlite_store: Store, server: SmppServer) -> None:
    sqlite_store.smpp.create_account("gone", hash_password("pw"), ["send"])
    assert sqlite_store.smpp.revoke_account("gone")
    esme = await RawEsme.connect(server.port_number)
    try:
        r = await esme.call(Pdu(Command.BIND_TRANSMITTER, 0, 0, bind_params("gone", "pw")))
        assert r.command_status == Status.RBINDFAIL
    finally:
        await esme.close()


async def test_no_bind_in_time_closes(server: SmppServer, cfg_box: dict[str, SmppConfig]) -> None:
    with_cfg(cfg_box, bind_timeout_s=0.2)
    esme = await RawEsme.connect(server.port_number)
    try:
        assert await esme.closed(timeout_s=3.0)
    finally:
        await esme.close()


async def test_silent_receiver_is_found_by_enquire_link(server: SmppServer, cfg_box: dict[str, SmppConfig]) -> None:
    with_cfg(cfg_box, enquire_link_interval_s=0.2, response_timeout_s=0.3)
    esme = await _bound(server, Command.BIND_RECEIVER)
    try:
        r = await esme.read(timeout_s=3.0)
        assert r.command is Command.ENQUIRE_LINK
        assert await esme.closed(timeout_s=3.0)  # it never answered
        assert server.receivers("esme") == []
    finally:
        await esme.close()


async def test_idle_session_is_unbound(server: SmppServer, cfg_box: dict[str, SmppConfig]) -> None:
    with_cfg(cfg_box, idle_timeout_s=0.3)
    esme = await _bound(server)
    try:
        r = await esme.read(timeout_s=3.0)
        assert r.command is Command.UNBIND
        esme.send(r.response())
        assert await esme.closed(timeout_s=3.0)
    finally:
        await esme.close()


async def test_stop_unbinds_bound_sessions(sqlite_store: Store, smpp_cfg: SmppConfig) -> None:
    sqlite_store.smpp.create_account("esme", hash_password(PASSWORD), ["send"])
    srv = SmppServer(smpp_cfg, sqlite_store, FakePort())
    await srv.start()
    esme = await RawEsme.connect(srv.port_number)
    try:
        assert (await esme.call(Pdu(Command.BIND_TRANSMITTER, 0, 0, bind_params("esme", PASSWORD)))).command_status == 0

        async def answer_unbind() -> Command | None:
            r = await esme.read()
            esme.send(r.response())
            return r.command

        answered = asyncio.create_task(answer_unbind())
        await srv.stop()
        assert await answered is Command.UNBIND
        assert await esme.closed()
    finally:
        await esme.close()


@pytest.mark.skipif(subprocess.run(["which", "openssl"], capture_output=True).returncode != 0,
                    reason="openssl not installed")
async def test_tls(sqlite_store: Store, smpp_cfg: SmppConfig, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    await asyncio.to_thread(
        subprocess.run,
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True)
    sqlite_store.smpp.create_account("esme", hash_password(PASSWORD), ["send"])
    cfg = dataclasses.replace(smpp_cfg, tls_cert_file=str(cert), tls_key_file=str(key))
    port = FakePort()
    srv = SmppServer(cfg, sqlite_store, port)
    await srv.start()
    try:
        def esme() -> bytes:
            ctx = ssl.create_default_context(cafile=str(cert))
            ctx.check_hostname = False  # smpplib wraps without a server name; the chain is still verified
            c = smpplib_client(srv.port_number, ssl_context=ctx)
            try:
                c.bind_transmitter(system_id="esme", password=PASSWORD)
                c.send_message(dest_addr_ton=1, destination_addr="447700900123", short_message=b"over TLS")
                message_id = c.read_pdu().message_id
                c.unbind()
                return message_id
            finally:
                c.disconnect()

        assert await asyncio.to_thread(esme) == b"msg0001"
        assert port.submissions[0][1].text == "over TLS"
    finally:
        await srv.stop()
