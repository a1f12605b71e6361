"""The SMPP PDU codec: golden bytes, an independent encoder/decoder (smpplib), fuzzing."""

from __future__ import annotations

import struct
from typing import Any

import pytest
import smpplib.smpp
from hypothesis import given, settings
from hypothesis import strategies as st

from gsmgw.errors import SmppError
from gsmgw.smpp.constants import Command, Status, Tag
from gsmgw.smpp.pdu import Destination, Pdu, Unsuccess, decode, encode, read_header

# bind_transmitter "test"/"pw", system_type "", version 0x34, ton/npi 0, address_range "",
# written out by hand from section 4.1.1.
BIND_TX = bytes.fromhex(
    "0000001D" "00000002" "00000000" "00000001"
    "7465737400" "707700" "00" "34" "00" "00" "00"
)


def test_golden_bind_transmitter() -> None:
    pdu = decode(BIND_TX)
    assert pdu.command is Command.BIND_TRANSMITTER
    assert pdu.sequence_number == 1
    assert pdu.params == {"system_id": "test", "password": "pw", "system_type": "", "interface_version": 0x34,
                          "addr_ton": 0, "addr_npi": 0, "address_range": ""}
    assert encode(pdu) == BIND_TX


def test_generic_nack_and_enquire_link_have_no_body() -> None:
    assert encode(Pdu(Command.ENQUIRE_LINK, 7)) == bytes.fromhex("00000010000000150000000000000007")
    nack = decode(bytes.fromhex("00000010800000000000000300000009"))
    assert (nack.command, nack.command_status, nack.sequence_number) == (Command.GENERIC_NACK, 3, 9)


def test_error_response_has_no_body_and_decodes_without_one() -> None:
    raw = encode(Pdu(Command.SUBMIT_SM_RESP, 5, Status.RINVDSTADR, {"message_id": "x"}))
    assert len(raw) == 16
    assert decode(raw).command_status == Status.RINVDSTADR


def _submit(**over: object) -> Pdu:
    params = {"service_type": "", "source_addr_ton": 5, "source_addr_npi": 0, "source_addr": "Shop",
              "dest_addr_ton": 1, "dest_addr_npi": 1, "destination_addr": "447700900123", "esm_class": 0,
              "protocol_id": 0, "priority_flag": 0, "schedule_delivery_time": "", "validity_period": "",
              "registered_delivery": 1, "replace_if_present_flag": 0, "data_coding": 0,
              "sm_default_msg_id": 0, "short_message": b"hello"}
    params.update(over)
    return Pdu(Command.SUBMIT_SM, 42, 0, params)


def test_submit_sm_round_trip_with_tlvs() -> None:
    pdu = _submit()
    pdu.tlvs = {Tag.SAR_MSG_REF_NUM: b"\x01\x02", Tag.SAR_TOTAL_SEGMENTS: b"\x03", Tag.SAR_SEGMENT_SEQNUM: b"\x01"}
    back = decode(encode(pdu))
    assert back.params == pdu.params
    assert back.tlvs == pdu.tlvs
    assert back.tlv_int(Tag.SAR_MSG_REF_NUM) == 0x0102


def test_submit_multi_and_resp_round_trip() -> None:
    p = _submit()
    del p.params["dest_addr_ton"], p.params["dest_addr_npi"], p.params["destination_addr"]
    p.params["dest_address"] = [Destination("447700900123", 1, 1), Destination("", dl_name="friends")]
    p.command_id = Command.SUBMIT_MULTI
    assert decode(encode(p)).params == p.params
    r = Pdu(Command.SUBMIT_MULTI_RESP, 1, 0, {"message_id": "abc", "unsuccess_sme": [Unsuccess("1", 1, 1, 11)]})
    assert decode(encode(r)).params == r.params


# --- against smpplib, an implementation nobody here wrote -----------------------------


class _Client:
    """What smpplib's PDU classes ask of a client: sequence numbers."""

    def __init__(self) -> None:
        self.sequence = 0

    def next_sequence(self) -> int:
        self.sequence += 1
        return self.sequence


def _parse(raw: bytes, **kwargs: object) -> Any:
    return smpplib.smpp.parse_pdu(raw, client=_Client(), **kwargs)


def _theirs(command: str, seq: int, **kwargs: object) -> bytes:
    p = smpplib.smpp.make_pdu(command, sequence=seq, **kwargs)
    p.sequence = seq
    return bytes(p.generate())


def test_decodes_smpplib_submit_sm() -> None:
    raw = _theirs(
        "submit_sm", 77, source_addr_ton=5, source_addr_npi=0, source_addr="Shop", dest_addr_ton=1,
        dest_addr_npi=1, destination_addr="447700900123", short_message=b"\x05\x00\x03\x07\x02\x01Hi",
        esm_class=0x40, data_coding=8, registered_delivery=1, validity_period="000001000000000R",
        sar_msg_ref_num=513)
    pdu = decode(raw)
    assert pdu.command is Command.SUBMIT_SM and pdu.sequence_number == 77
    assert pdu.get("destination_addr") == "447700900123"
    assert pdu.get("short_message") == b"\x05\x00\x03\x07\x02\x01Hi"
    assert (pdu.get("esm_class"), pdu.get("data_coding"), pdu.get("registered_delivery")) == (0x40, 8, 1)
    assert pdu.get("validity_period") == "000001000000000R"
    assert pdu.tlv_int(Tag.SAR_MSG_REF_NUM) == 513


@pytest.mark.parametrize("command", ["bind_transmitter", "bind_receiver", "bind_transceiver"])
def test_decodes_smpplib_binds(command: str) -> None:
    pdu = decode(_theirs(command, 3, system_id="esme1", password="secret8", system_type=""))
    assert pdu.name == command and pdu.get("system_id") == "esme1" and pdu.get("password") == "secret8"
    assert pdu.get("interface_version") == 0x34


def test_smpplib_decodes_our_deliver_sm_receipt() -> None:
    ours = Pdu(Command.DELIVER_SM, 9, 0, {
        "source_addr_ton": 1, "source_addr_npi": 1, "source_addr": "447700900123",
        "dest_addr_ton": 5, "destination_addr": "Shop", "esm_class": 4,
        "short_message": b"id:abc sub:001 dlvrd:001 stat:DELIVRD err:000 text:hi"},
        {Tag.RECEIPTED_MESSAGE_ID: b"abc\0", Tag.MESSAGE_STATE: b"\x02"})
    theirs = _parse(encode(ours), allow_unknown_opt_params=True)
    assert theirs.command == "deliver_sm" and theirs.sequence == 9
    assert theirs.source_addr == b"447700900123" and theirs.destination_addr == b"Shop"
    assert theirs.esm_class == 4
    assert theirs.short_message.startswith(b"id:abc")
    assert theirs.receipted_message_id == b"abc" and theirs.message_state == 2


def test_smpplib_decodes_our_responses() -> None:
    req = decode(_theirs("bind_transceiver", 5, system_id="a", password="b"))
    resp = req.response(system_id="gsmgw")
    resp.tlvs[Tag.SC_INTERFACE_VERSION] = b"\x34"
    theirs = _parse(encode(resp), allow_unknown_opt_params=True)
    assert theirs.command == "bind_transceiver_resp" and theirs.sequence == 5 and theirs.system_id == b"gsmgw"
    sub = _theirs("submit_sm", 6, destination_addr="1", short_message=b"x")
    resp = decode(sub).response(message_id="0192f0a1b2c3d4e5f6a7b8c9")
    theirs = _parse(encode(resp))
    assert theirs.command == "submit_sm_resp" and theirs.message_id == b"0192f0a1b2c3d4e5f6a7b8c9"
    theirs = _parse(encode(decode(sub).response(Status.RTHROTTLED)))
    assert theirs.status == Status.RTHROTTLED


# --- refusals: each with the status a server answers --------------------------------------


def _with_len(body: bytes, command_id: int = Command.SUBMIT_SM, seq: int = 1) -> bytes:
    return struct.pack(">IIII", 16 + len(body), command_id, 0, seq) + body


@pytest.mark.parametrize(("raw", "status"), [
    (b"\x00\x00\x00\x08" + b"\x00" * 12, Status.RINVCMDLEN),  # command_length below 16
    (b"\x7f\x00\x00\x00" + b"\x00" * 12, Status.RINVCMDLEN),  # 2 GiB
    (_with_len(b"", 0x0000_0099), Status.RINVCMDID),  # unknown command
    (_with_len(b"", Command.DATA_SM), Status.RINVCMDID),  # known, not offered
    (_with_len(b"\0" * 3), Status.RINVMSGLEN),  # submit_sm cut short
    (_with_len(b"\0\0\0" + b"1" * 30 + b"\0"), Status.RINVSRCADR),  # source_addr 30 chars
    (_with_len(b"\0\0\0" + b"1\0" + b"\1\1" + b"9" * 25 + b"\0"), Status.RINVDSTADR),
    (_with_len(b"\0\1\1x\0\1\1y\0" + b"\0" * 3 + b"\0\0" + b"\0\0\0\0" + b"\xff" + b"ab"), Status.RINVMSGLEN),
    (_with_len(b"\0\1\1x\0\1\1y\0" + b"\0" * 3 + b"\0\0" + b"\0\0\0\0" + b"\0" + b"\x02\x0c\x00"),
     Status.RINVOPTPARSTREAM),
    (_with_len(b"\0\1\1x\0\1\1y\0" + b"\0" * 3 + b"\0\0" + b"\0\0\0\0" + b"\0" + b"\x02\x0c\x00\x01\x05"),
     Status.RINVPARLEN),  # sar_msg_ref_num must be 2 octets
    (_with_len(b"toolong_system_id_x\0pw\0\0\x34\0\0\0", Command.BIND_TRANSMITTER), Status.RINVSYSID),
    (_with_len(b"id\0password9\0\0\x34\0\0\0", Command.BIND_TRANSMITTER), Status.RINVPASWD),
    (_with_len(b"x", Command.ENQUIRE_LINK), Status.RINVMSGLEN),  # a body where none belongs
])
def test_refusals_carry_their_status(raw: bytes, status: Status) -> None:
    with pytest.raises(SmppError) as err:
        decode(raw)
    assert err.value.status == status, str(err.value)


def test_header_errors_keep_the_sequence_number() -> None:
    with pytest.raises(SmppError) as err:
        read_header(struct.pack(">IIII", 5, Command.SUBMIT_SM, 0, 1234))
    assert err.value.sequence_number == 1234 and err.value.command_id == Command.SUBMIT_SM


def test_encode_refuses_what_does_not_fit() -> None:
    with pytest.raises(SmppError):
        encode(_submit(destination_addr="1" * 21))
    with pytest.raises(SmppError):
        encode(_submit(short_message=b"x" * 255))
    with pytest.raises(SmppError):
        encode(_submit(esm_class=256))


# --- fuzzing: nothing but SmppError escapes the decoder --------------------------------------


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_raw_bytes(data: bytes) -> None:
    try:
        pdu = decode(data)
    except SmppError:
        return
    assert pdu.command is not None


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(list(Command)), st.integers(0, 0xFFFFFFFF), st.binary(max_size=300))
def test_fuzz_valid_header_random_body(command: Command, status: int, body: bytes) -> None:
    raw = struct.pack(">IIII", 16 + len(body), command, status, 1) + body
    try:
        pdu = decode(raw)
    except SmppError:
        return
    # What decodes re-encodes, and means the same the second time.
    try:
        again = encode(pdu)
    except SmppError:
        return
    if command.is_response and status != 0:
        assert len(again) == 16  # error responses go out without a body
    else:
        assert decode(again).params == pdu.params


@settings(max_examples=500, deadline=None)
@given(st.data())
def test_fuzz_mutated_valid_submit(data: st.DataObject) -> None:
    raw = bytearray(encode(_submit()))
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    try:
        decode(bytes(raw))
    except SmppError:
        pass
