"""UCS-2 as UTF-16BE with surrogate pairs (what every phone since ~2010 does)."""

from __future__ import annotations


def encode_ucs2(text: str) -> bytes:
    """Text -> UTF-16BE. Astral characters (emoji) become surrogate pairs."""
    # 'surrogatepass' would let a lone surrogate through; the caller's str should
    # not contain one, but if it does we refuse rather than send garbage.
    from gsmgw.errors import CodecError

    try:
        return text.encode("utf-16-be")
    except UnicodeEncodeError as exc:
        raise CodecError(f"text contains a lone surrogate at index {exc.start}") from None


def decode_ucs2(data: bytes) -> str:
    """UTF-16BE -> text. Lone surrogates and a dangling odd octet become U+FFFD, so the
    result is always valid Unicode (storable, JSON-serialisable)."""
    return data.decode("utf-16-be", errors="replace")


def ucs2_units(text: str) -> int:
    """Number of UTF-16 code units (2 octets each) the text takes."""
    return sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)
