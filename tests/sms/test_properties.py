"""Property tests: round trips over arbitrary Unicode, and fuzzing of the decoder."""

from __future__ import annotations

import datetime as dt
import json
import random

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gsmgw.domain import Encoding
from gsmgw.errors import CodecError
from gsmgw.sms import (
    Deliver,
    Reassembler,
    Submit,
    decode_pdu,
    encode_deliver,
    encode_submit,
    preview,
)
from gsmgw.sms.ucs2 import decode_ucs2

TO = "+447700900123"
SCTS = dt.datetime(2026, 5, 6, 7, 8, 9, tzinfo=dt.timezone(dt.timedelta(hours=-7)))
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

unicode_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=400)
escape_heavy = st.text(st.sampled_from("€{}[]~\\^|@a\n\r"), max_size=400)
emoji_heavy = st.text(
    st.one_of(st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF), st.sampled_from("ab \u200d\U0001F3FD\ufe0f")),
    max_size=200,
)
national = st.text(st.sampled_from("şğıİçüöŞĞ abcáéíóúñÁ€नमस्तेவணக்கம்ہیلوআমি0123"), max_size=400)


def _joined_text(decoded: list[Submit]) -> str:
    if decoded and decoded[0].encoding is Encoding.UCS2:
        return decode_ucs2(b"".join(d.user_data for d in decoded))
    return "".join(d.text for d in decoded)


def _check_round_trip(text: str) -> None:
    m = encode_submit(TO, text, concat_ref=0x99, max_parts=255)
    decoded = []
    for i, part in enumerate(m.parts, start=1):
        raw = bytes.fromhex(part.pdu)
        assert part.tpdu_length == len(raw) - 1  # "00" SMSC field
        d = decode_pdu(part.pdu, tpdu_length=part.tpdu_length)
        assert isinstance(d, Submit)
        assert d.tp_udl <= (160 if d.encoding is Encoding.GSM7 else 140)
        assert len(d.ud_raw) <= 140
        if len(m.parts) > 1:
            assert d.concat is not None and (d.concat.sequence, d.concat.total) == (i, len(m.parts))
        assert d.text == part.text  # every part decodes on its own: nothing split mid-character
        decoded.append(d)
    assert _joined_text(decoded) == text
    p = preview(text, max_parts=255)
    assert (p.parts, p.encoding) == (len(m.parts), m.encoding)
    json.dumps([d.text for d in decoded])


@FAST
@given(unicode_text)
def test_round_trip_arbitrary_unicode(text: str) -> None:
    _check_round_trip(text)


@FAST
@given(escape_heavy)
def test_round_trip_escape_characters(text: str) -> None:
    _check_round_trip(text)


@FAST
@given(emoji_heavy)
def test_round_trip_astral_and_clusters(text: str) -> None:
    _check_round_trip(text)


@FAST
@given(national)
def test_round_trip_national_tables(text: str) -> None:
    _check_round_trip(text)


@FAST
@given(unicode_text, st.booleans(), st.randoms(use_true_random=False))
def test_deliver_reassembly_out_of_order_with_duplicates(text: str, bits16: bool, rnd: random.Random) -> None:
    pdus = encode_deliver("+15551234567", text, scts=SCTS, concat_ref=0x77, concat_16bit=bits16,
                          max_parts=255)
    assert isinstance(pdus, list)
    parts = [decode_pdu(p) for p in pdus]
    order = parts + parts[: len(parts) // 2]  # some parts twice
    rnd.shuffle(order)
    r = Reassembler()
    done = []
    for now, part in enumerate(order):
        assert isinstance(part, Deliver)
        got = r.add("+15551234567", part, now=float(now))
        if got is not None:
            done.append(got)
    assert len(done) == 1 and len(r) == 0  # late duplicates start no ghost message
    assert done[0].text == text and done[0].complete


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200), st.one_of(st.none(), st.integers(min_value=-2, max_value=210)), st.booleans())
def test_fuzz_decoder_only_codec_error(data: bytes, tpdu_length: int | None, smsc: bool) -> None:
    try:
        d = decode_pdu(data.hex(), tpdu_length=tpdu_length, smsc_included=smsc)
    except CodecError as exc:
        assert str(exc)
        return
    json.dumps(d.text)


VALID = [
    "07911326040000F0040B911346610089F60000208062917314480CC8F71D14969741F977FD07",
    encode_submit(TO, "Zebra " * 40, concat_ref=0x1234, concat_16bit=True, validity=SCTS).parts[0].pdu,
    encode_submit(TO, "Şişli güzel " * 3).parts[0].pdu,
    encode_deliver("MyBank", "Ж😀" * 50, scts=SCTS, concat_ref=1)[0],  # type: ignore[index]
    "0006D60B911326880736F4111011719551401110117195714000",
]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(VALID), st.lists(st.tuples(st.integers(0, 500), st.integers(0, 255)), max_size=4),
       st.integers(0, 10))
def test_fuzz_mutated_valid_pdus(pdu: str, flips: list[tuple[int, int]], cut: int) -> None:
    raw = bytearray(bytes.fromhex(pdu))
    for pos, val in flips:
        raw[pos % len(raw)] = val
    raw = raw[: len(raw) - cut] if cut < len(raw) else raw
    assume(raw)
    try:
        d = decode_pdu(bytes(raw).hex())
    except CodecError:
        return
    json.dumps(d.text)


@FAST
@given(st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2099, 12, 31, 23, 59, 59)),
       st.integers(min_value=-79, max_value=79))
def test_timestamp_round_trip(when: dt.datetime, quarters: int) -> None:
    from gsmgw.sms.pdu import decode_timestamp, encode_timestamp

    aware = when.replace(microsecond=0, tzinfo=dt.timezone(dt.timedelta(minutes=15 * quarters)))
    back = decode_timestamp(encode_timestamp(aware))
    assert back == aware and back.utcoffset() == aware.utcoffset()
