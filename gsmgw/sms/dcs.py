"""TP-DCS (3GPP TS 23.038 §4) and TP-PID helpers."""

from __future__ import annotations

from dataclasses import dataclass

from gsmgw.domain import Encoding
from gsmgw.errors import CodecError

MWI_TYPES = {0: "voicemail", 1: "fax", 2: "email", 3: "other"}


@dataclass(frozen=True, slots=True)
class DataCoding:
    encoding: Encoding
    message_class: int | None = None  # 0 flash, 1 ME, 2 SIM, 3 TE
    compressed: bool = False
    auto_delete: bool = False  # group 01xx: "marked for automatic deletion"
    mwi_active: bool | None = None  # message waiting groups 1100/1101/1110
    mwi_type: str | None = None
    mwi_discard: bool = False  # group 1100: the message may be discarded after indication


def decode_dcs(dcs: int) -> DataCoding:
    """Every coding group of TS 23.038 §4; reserved groups read as GSM 7-bit as the spec says."""
    if not 0 <= dcs <= 0xFF:
        raise CodecError(f"TP-DCS {dcs} out of range")
    group = dcs >> 4
    if group <= 0x7:  # 00xx general data coding, 01xx automatic deletion
        alphabet = (dcs >> 2) & 0x03
        enc = {0: Encoding.GSM7, 1: Encoding.BINARY, 2: Encoding.UCS2, 3: Encoding.GSM7}[alphabet]
        cls = dcs & 0x03 if dcs & 0x10 else None
        return DataCoding(enc, cls, compressed=bool(dcs & 0x20), auto_delete=group >= 0x4)
    if group <= 0xB:  # 1000..1011 reserved
        return DataCoding(Encoding.GSM7)
    if group in (0xC, 0xD, 0xE):  # message waiting indication
        enc = Encoding.UCS2 if group == 0xE else Encoding.GSM7
        return DataCoding(enc, None, mwi_active=bool(dcs & 0x08), mwi_type=MWI_TYPES[dcs & 0x03],
                          mwi_discard=group == 0xC)
    # 1111: data coding / message class
    enc = Encoding.BINARY if dcs & 0x04 else Encoding.GSM7
    return DataCoding(enc, dcs & 0x03)


def encode_dcs(encoding: Encoding, message_class: int | None = None) -> int:
    """General data coding group: 0x00/0x08/0x04, with 0x10|class when a class is set
    (flash = class 0 -> 0x10 / 0x18 / 0x14)."""
    base = {Encoding.GSM7: 0x00, Encoding.BINARY: 0x04, Encoding.UCS2: 0x08}[encoding]
    if message_class is None:
        return base
    if message_class not in (0, 1, 2, 3):
        raise CodecError(f"message class must be 0-3, got {message_class}")
    return base | 0x10 | message_class
