"""SMPP 3.4 numbers: command ids, command_status values, TLV tags, message states.

Names follow the specification (SMPP v3.4, issue 1.2, sections 5.1.2, 5.1.3, 5.3.2
and 5.2.28). Pure data: no I/O.
"""

from __future__ import annotations

import enum

INTERFACE_VERSION = 0x34
HEADER_BYTES = 16
RESPONSE_BIT = 0x80000000


class Command(enum.IntEnum):
    GENERIC_NACK = 0x80000000
    BIND_RECEIVER = 0x00000001
    BIND_RECEIVER_RESP = 0x80000001
    BIND_TRANSMITTER = 0x00000002
    BIND_TRANSMITTER_RESP = 0x80000002
    QUERY_SM = 0x00000003
    QUERY_SM_RESP = 0x80000003
    SUBMIT_SM = 0x00000004
    SUBMIT_SM_RESP = 0x80000004
    DELIVER_SM = 0x00000005
    DELIVER_SM_RESP = 0x80000005
    UNBIND = 0x00000006
    UNBIND_RESP = 0x80000006
    REPLACE_SM = 0x00000007
    REPLACE_SM_RESP = 0x80000007
    CANCEL_SM = 0x00000008
    CANCEL_SM_RESP = 0x80000008
    BIND_TRANSCEIVER = 0x00000009
    BIND_TRANSCEIVER_RESP = 0x80000009
    OUTBIND = 0x0000000B
    ENQUIRE_LINK = 0x00000015
    ENQUIRE_LINK_RESP = 0x80000015
    SUBMIT_MULTI = 0x00000021
    SUBMIT_MULTI_RESP = 0x80000021
    ALERT_NOTIFICATION = 0x00000102
    DATA_SM = 0x00000103
    DATA_SM_RESP = 0x80000103

    @property
    def is_response(self) -> bool:
        return bool(self & RESPONSE_BIT)

    @property
    def response(self) -> Command:
        """The *_resp of a request (generic_nack for those that have none)."""
        try:
            return Command(self | RESPONSE_BIT)
        except ValueError:
            return Command.GENERIC_NACK


class Status(enum.IntEnum):
    """command_status values (ESME_R*)."""

    ROK = 0x00
    RINVMSGLEN = 0x01
    RINVCMDLEN = 0x02
    RINVCMDID = 0x03
    RINVBNDSTS = 0x04
    RALYBND = 0x05
    RINVPRTFLG = 0x06
    RINVREGDLVFLG = 0x07
    RSYSERR = 0x08
    RINVSRCADR = 0x0A
    RINVDSTADR = 0x0B
    RINVMSGID = 0x0C
    RBINDFAIL = 0x0D
    RINVPASWD = 0x0E
    RINVSYSID = 0x0F
    RCANCELFAIL = 0x11
    RREPLACEFAIL = 0x13
    RMSGQFUL = 0x14
    RINVSERTYP = 0x15
    RINVNUMDESTS = 0x33
    RINVDLNAME = 0x34
    RINVDESTFLAG = 0x40
    RINVSUBREP = 0x42
    RINVESMCLASS = 0x43
    RCNTSUBDL = 0x44
    RSUBMITFAIL = 0x45
    RINVSRCTON = 0x48
    RINVSRCNPI = 0x49
    RINVDSTTON = 0x50
    RINVDSTNPI = 0x51
    RINVSYSTYP = 0x53
    RINVREPFLAG = 0x54
    RINVNUMMSGS = 0x55
    RTHROTTLED = 0x58
    RINVSCHED = 0x61
    RINVEXPIRY = 0x62
    RINVDFTMSGID = 0x63
    RX_T_APPN = 0x64
    RX_P_APPN = 0x65
    RX_R_APPN = 0x66
    RQUERYFAIL = 0x67
    RINVOPTPARSTREAM = 0xC0
    ROPTPARNOTALLWD = 0xC1
    RINVPARLEN = 0xC2
    RMISSINGOPTPARAM = 0xC3
    RINVOPTPARAMVAL = 0xC4
    RDELIVERYFAILURE = 0xFE
    RUNKNOWNERR = 0xFF
    # SMPP 3.4 has no code for an unsupported data_coding; 0x104 is ESME_RINVDCS of
    # SMPP 5.0, which 3.4 clients show as a plain error and 5.0-aware ones by name.
    RINVDCS = 0x104


class Tag(enum.IntEnum):
    """Optional parameter (TLV) tags this server reads or writes."""

    DEST_ADDR_SUBUNIT = 0x0005
    SOURCE_ADDR_SUBUNIT = 0x000D
    QOS_TIME_TO_LIVE = 0x0017
    PAYLOAD_TYPE = 0x0019
    ADDITIONAL_STATUS_INFO_TEXT = 0x001D
    RECEIPTED_MESSAGE_ID = 0x001E
    MS_MSG_WAIT_FACILITIES = 0x0030
    PRIVACY_INDICATOR = 0x0201
    USER_MESSAGE_REFERENCE = 0x0204
    SOURCE_PORT = 0x020A
    DESTINATION_PORT = 0x020B
    SAR_MSG_REF_NUM = 0x020C
    LANGUAGE_INDICATOR = 0x020D
    SAR_TOTAL_SEGMENTS = 0x020E
    SAR_SEGMENT_SEQNUM = 0x020F
    SC_INTERFACE_VERSION = 0x0210
    NUMBER_OF_MESSAGES = 0x0304
    NETWORK_ERROR_CODE = 0x0423
    MESSAGE_PAYLOAD = 0x0424
    DELIVERY_FAILURE_REASON = 0x0425
    MORE_MESSAGES_TO_SEND = 0x0426
    MESSAGE_STATE = 0x0427


# Fixed value lengths of TLVs (section 5.3.2); a TLV of another length is refused
# with ESME_RINVPARLEN. Variable-length ones are absent here.
TLV_FIXED_LENGTH: dict[int, int] = {
    Tag.DEST_ADDR_SUBUNIT: 1,
    Tag.SOURCE_ADDR_SUBUNIT: 1,
    Tag.QOS_TIME_TO_LIVE: 4,
    Tag.PAYLOAD_TYPE: 1,
    Tag.MS_MSG_WAIT_FACILITIES: 1,
    Tag.PRIVACY_INDICATOR: 1,
    Tag.USER_MESSAGE_REFERENCE: 2,
    Tag.SOURCE_PORT: 2,
    Tag.DESTINATION_PORT: 2,
    Tag.SAR_MSG_REF_NUM: 2,
    Tag.LANGUAGE_INDICATOR: 1,
    Tag.SAR_TOTAL_SEGMENTS: 1,
    Tag.SAR_SEGMENT_SEQNUM: 1,
    Tag.SC_INTERFACE_VERSION: 1,
    Tag.NUMBER_OF_MESSAGES: 1,
    Tag.NETWORK_ERROR_CODE: 3,
    Tag.DELIVERY_FAILURE_REASON: 1,
    Tag.MORE_MESSAGES_TO_SEND: 1,
    Tag.MESSAGE_STATE: 1,
}


class MessageStateCode(enum.IntEnum):
    """message_state (section 5.2.28) and the 7-letter stat of a receipt (Appendix B)."""

    ENROUTE = 1
    DELIVERED = 2
    EXPIRED = 3
    DELETED = 4
    UNDELIVERABLE = 5
    ACCEPTED = 6
    UNKNOWN = 7
    REJECTED = 8

    @property
    def stat(self) -> str:
        return _STAT[self]


_STAT = {
    MessageStateCode.ENROUTE: "ENROUTE",
    MessageStateCode.DELIVERED: "DELIVRD",
    MessageStateCode.EXPIRED: "EXPIRED",
    MessageStateCode.DELETED: "DELETED",
    MessageStateCode.UNDELIVERABLE: "UNDELIV",
    MessageStateCode.ACCEPTED: "ACCEPTD",
    MessageStateCode.UNKNOWN: "UNKNOWN",
    MessageStateCode.REJECTED: "REJECTD",
}

# esm_class bits (section 5.2.12).
ESM_UDHI = 0x40
ESM_REPLY_PATH = 0x80
ESM_MESSAGE_MODE_MASK = 0x03
ESM_MESSAGE_TYPE_MASK = 0x3C
ESM_TYPE_DELIVERY_RECEIPT = 0x04
ESM_TYPE_INTERMEDIATE = 0x20

# registered_delivery bits (section 5.2.17).
RD_RECEIPT_MASK = 0x03
RD_RECEIPT_NONE = 0
RD_RECEIPT_ALWAYS = 1
RD_RECEIPT_ON_FAILURE = 2
RD_INTERMEDIATE = 0x10
