"""The SMS codec: GSM 7-bit / UCS-2 text, segmentation, TPDU encode/decode, reassembly.

Pure code: no I/O, no asyncio. Bad input raises :class:`gsmgw.errors.CodecError` only.
"""

from gsmgw.sms.concat import ReassembledMessage, Reassembler
from gsmgw.sms.dcs import DataCoding, decode_dcs, encode_dcs
from gsmgw.sms.gsm7 import NationalLanguage
from gsmgw.sms.pdu import (
    Concat,
    Deliver,
    EncodedMessage,
    EncodedPart,
    Preview,
    StatusCategory,
    StatusReport,
    Submit,
    UdhElement,
    decode_pdu,
    encode_deliver,
    encode_status_report,
    encode_submit,
    preview,
    status_category,
    status_meaning,
    submit_to_deliver,
)
from gsmgw.sms.segment import grapheme_clusters
from gsmgw.sms.smart import smart_replace

__all__ = [
    "Concat",
    "DataCoding",
    "Deliver",
    "EncodedMessage",
    "EncodedPart",
    "NationalLanguage",
    "Preview",
    "ReassembledMessage",
    "Reassembler",
    "StatusCategory",
    "StatusReport",
    "Submit",
    "UdhElement",
    "decode_dcs",
    "decode_pdu",
    "encode_dcs",
    "encode_deliver",
    "encode_status_report",
    "encode_submit",
    "grapheme_clusters",
    "preview",
    "smart_replace",
    "status_category",
    "status_meaning",
    "submit_to_deliver",
]
