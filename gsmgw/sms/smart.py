"""Opt-in "smart encoding": typographic characters -> GSM 7-bit look-alikes.

Phones and word processors insert curly quotes, long dashes and special spaces that
force a whole message into UCS-2 (70 instead of 160 characters per part). With
``smart_encoding=True`` the codec replaces them, and only them, when that lets the
message go out in GSM 7-bit.
"""

from __future__ import annotations

SMART_MAP: dict[str, str] = {
    # quotes and apostrophes
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u02bc": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
    "\u00ab": '"', "\u00bb": '"', "\u2039": "<", "\u203a": ">",
    # dashes and minus
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-",
    "\u2212": "-",
    # spaces
    "\u00a0": " ", "\u2002": " ", "\u2003": " ", "\u2004": " ", "\u2005": " ", "\u2006": " ",
    "\u2007": " ", "\u2008": " ", "\u2009": " ", "\u200a": " ", "\u202f": " ", "\u205f": " ",
    "\u3000": " ",
    # invisible characters that carry no meaning in an SMS
    "\u200b": "", "\u2060": "", "\ufeff": "", "\u00ad": "",
    # punctuation and symbols
    "\u2026": "...", "\u2022": "*", "\u00b7": ".", "\u2044": "/", "\u00d7": "x",
    "\u2122": "TM", "\u00a9": "(C)", "\u00ae": "(R)",
}

_TABLE = str.maketrans(SMART_MAP)


def smart_replace(text: str) -> str:
    """Replace typographic characters by their GSM 7-bit equivalents."""
    return text.translate(_TABLE)
