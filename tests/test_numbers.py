"""Number equality by E.164 (gsmgw.numbers), across countries and renderings."""

from __future__ import annotations

from typing import Any

import phonenumbers
import pytest
from phonenumbers import PhoneMetadata, PhoneNumberType

from gsmgw import numbers as numbers_mod
from gsmgw.numbers import SUFFIX_DIGITS, lookup_keys, number_key, same_number, to_e164


@pytest.mark.parametrize(
    ("a", "b", "region", "same"),
    [
        # The same last digits in another country are another subscriber.
        ("+447700900123", "+497700900123", None, False),
        ("+447700900123", "+4915100900123", None, False),
        ("+4915100900123", "+3315100900123", None, False),
        ("+12025550123", "+4412025550123", None, False),
        ("+33612345678", "+3412345678", None, False),
        # National renderings are read in the configured region.
        ("07700900123", "+447700900123", "GB", True),
        ("07700900123", "+447700900123", "gb", True),
        ("07700900123", "+497700900123", "GB", False),
        ("015100900123", "+4915100900123", "DE", True),
        ("015100900123", "+4415100900123", "DE", False),
        ("0612345678", "+33612345678", "FR", True),
        ("0612345678", "+31612345678", "FR", False),
        ("0612345678", "+31612345678", "NL", True),
        ("2025550123", "+12025550123", "US", True),
        ("(202) 555-0123", "+1 202 555 0123", "US", True),
        # In DE "07700900123" is a German number: not the British one.
        ("07700900123", "+447700900123", "DE", False),
        # International without the plus (TON unknown) and with the 00 prefix.
        ("447700900123", "+447700900123", None, True),
        ("447700900123", "+447700900123", "US", True),
        ("00447700900123", "+447700900123", "DE", True),
        ("00447700900123", "+447700900123", None, True),
        # Punctuation and the "(0)" some write in international numbers.
        ("+44 7700 900123", "+447700900123", None, True),
        ("+44 (0)7700 900123", "+447700900123", None, True),
        # Short national numbers (Iceland: 7 digits).
        ("5511234", "+3545511234", "IS", True),
        ("5511234", "+3545511235", "IS", False),
        # Short codes and alphanumeric senders: only themselves.
        ("12345", "12345", None, True),
        ("12345", "+447700912345", None, False),
        ("BANK", "BANK", None, True),
        ("BANK", "bank", None, False),
        ("+447700900123", "900123", "GB", False),
    ],
)
def test_same_number_across_countries(a: str, b: str, region: str | None, same: bool) -> None:
    assert same_number(a, b, region) is same
    assert same_number(b, a, region) is same  # symmetric


def test_national_without_a_region_is_read_in_the_other_numbers_country() -> None:
    # A status report for a part sent to +44... that comes back national: the
    # network wrote it in its own country's format.
    assert same_number("+447700900123", "07700900123")
    assert same_number("+33612345678", "0612345678")
    assert not same_number("+33612345678", "0612345679")
    # Two national renderings with no region: the same significant digits.
    assert same_number("07700900123", "7700900123")
    assert not same_number("07700900123", "07700900124")


def test_to_e164() -> None:
    assert to_e164("+44 7700 900123") == "+447700900123"
    assert to_e164("07700900123", "GB") == "+447700900123"
    assert to_e164("07700900123") is None  # national, and no region to read it in
    assert to_e164("BANK", "GB") is None
    assert to_e164("", "GB") is None
    assert to_e164("+999123456") is None  # no such country code


@pytest.mark.parametrize(
    ("stored", "asked", "region"),
    [
        ("+447700900123", "07700900123", "GB"),
        ("07700900123", "+447700900123", "GB"),
        ("+3545511234", "5511234", "IS"),
        ("5511234", "+3545511234", "IS"),
        ("+3545511234", "003545511234", "IS"),
    ],
)
def test_a_stored_rendering_is_found_from_any_other(stored: str, asked: str, region: str) -> None:
    """The opt-out table is searched by number_key: every rendering of a number must
    look under the key another rendering was stored with."""
    assert same_number(stored, asked, region)
    assert number_key(stored) in lookup_keys(asked, region)


def test_number_key_is_the_last_8_digits() -> None:
    # The format rows were stored with before this module: unchanged, no migration.
    assert number_key("+447700900123") == "00900123"
    assert number_key("07700900123") == "00900123"
    assert number_key("BANK") == "BANK"


def test_no_numbering_plan_is_shorter_than_the_suffix_same_number_compares() -> None:
    """same_number rejects two plain renderings whose last SUFFIX_DIGITS digits differ
    without parsing them: sound only while no national significant number is shorter."""
    lengths = {min(PhoneMetadata.metadata_for_region(r).general_desc.possible_length or (99,))
               for r in phonenumbers.SUPPORTED_REGIONS}
    assert min(lengths) >= SUFFIX_DIGITS


def test_every_regions_renderings_of_a_number_are_the_same_number() -> None:
    """The quick rejection by last digits never parts two renderings of one number:
    the example numbers of every region and type, as E.164, national (trunk prefix
    included), international without the plus and with 00 (not every region's
    international prefix: then another number), each read in its region."""
    checked = 0
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE, PhoneNumberType.TOLL_FREE):
            num = phonenumbers.example_number_for_type(region, kind)
            if num is None:
                continue
            e164 = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
            national = "".join(c for c in phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.NATIONAL)
                               if c.isdigit())
            renderings = [e164, e164[1:], "00" + e164[1:], national]
            for a in renderings:
                for b in renderings:
                    ea, eb = to_e164(a, region), to_e164(b, region)
                    if ea is not None and eb is not None:  # then same_number is their E.164 forms' equality
                        assert same_number(a, b, region) is (ea == eb), (region, kind, a, b)
                        checked += ea == eb
            # One digit off at the end: another number, however it is written.
            last = str((int(e164[-1]) + 1) % 10)
            assert not same_number(e164, national[:-1] + last, region), (region, kind)
    assert checked > 2000


def test_a_report_is_matched_among_many_parts_without_parsing_each(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parts whose last digits differ are rejected before phonenumbers is asked."""
    calls: list[str] = []
    real = numbers_mod._parse

    def counting(raw: str, region: str | None) -> Any:
        calls.append(raw)
        return real(raw, region)

    monkeypatch.setattr(numbers_mod, "_parse", counting)
    parts = [f"+4477009{i:05d}" for i in range(1000)]
    assert [p for p in parts if same_number(p, "07700900123", "GB")] == ["+447700900123"]
    assert len(calls) <= 10
