"""What a ``+CMS ERROR`` on submit means for the message: retry, or give up.

Codes 1-127 are RP-causes relayed from the network (TS 24.011 §8.2.5.4 / Table 8.4),
128-255 TP-FCS values (TS 23.040 §9.2.3.22), 300-511 ME/SIM errors (TS 27.005 §3.2.5),
512+ manufacturer specific.
"""

from __future__ import annotations

import enum


class ErrorClass(enum.Enum):
    PERMANENT = "permanent"  # the message itself is at fault: fail it now
    TRANSIENT = "transient"  # try again later, preferably on another SIM
    MODEM = "modem"  # the modem/SIM is at fault: retry elsewhere and rest this one


CMS_MEANINGS: dict[int, tuple[ErrorClass, str]] = {
    1: (ErrorClass.PERMANENT, "unassigned (unallocated) number"),
    8: (ErrorClass.MODEM, "operator determined barring"),
    10: (ErrorClass.MODEM, "call barred"),
    21: (ErrorClass.PERMANENT, "short message transfer rejected"),
    27: (ErrorClass.TRANSIENT, "destination out of service"),
    28: (ErrorClass.PERMANENT, "unidentified subscriber"),
    29: (ErrorClass.PERMANENT, "facility rejected"),
    30: (ErrorClass.PERMANENT, "unknown subscriber"),
    38: (ErrorClass.TRANSIENT, "network out of order"),
    41: (ErrorClass.TRANSIENT, "temporary failure"),
    42: (ErrorClass.TRANSIENT, "congestion"),
    47: (ErrorClass.TRANSIENT, "resources unavailable, unspecified"),
    50: (ErrorClass.MODEM, "requested facility not subscribed"),
    69: (ErrorClass.PERMANENT, "requested facility not implemented"),
    81: (ErrorClass.TRANSIENT, "invalid short message transfer reference value"),
    95: (ErrorClass.PERMANENT, "invalid message, unspecified"),
    96: (ErrorClass.PERMANENT, "invalid mandatory information"),
    97: (ErrorClass.PERMANENT, "message type non-existent or not implemented"),
    98: (ErrorClass.PERMANENT, "message not compatible with short message protocol state"),
    99: (ErrorClass.PERMANENT, "information element non-existent or not implemented"),
    111: (ErrorClass.TRANSIENT, "protocol error, unspecified"),
    127: (ErrorClass.TRANSIENT, "interworking, unspecified"),
    128: (ErrorClass.PERMANENT, "telematic interworking not supported"),
    129: (ErrorClass.PERMANENT, "short message type 0 not supported"),
    130: (ErrorClass.PERMANENT, "cannot replace short message"),
    143: (ErrorClass.PERMANENT, "unspecified TP-PID error"),
    144: (ErrorClass.PERMANENT, "data coding scheme (alphabet) not supported"),
    145: (ErrorClass.PERMANENT, "message class not supported"),
    159: (ErrorClass.PERMANENT, "unspecified TP-DCS error"),
    160: (ErrorClass.PERMANENT, "command cannot be actioned"),
    161: (ErrorClass.PERMANENT, "command unsupported"),
    175: (ErrorClass.PERMANENT, "unspecified TP-Command error"),
    176: (ErrorClass.PERMANENT, "TPDU not supported"),
    192: (ErrorClass.TRANSIENT, "SC busy"),
    193: (ErrorClass.MODEM, "no SC subscription"),
    194: (ErrorClass.TRANSIENT, "SC system failure"),
    195: (ErrorClass.MODEM, "invalid SME address"),
    196: (ErrorClass.PERMANENT, "destination SME barred"),
    197: (ErrorClass.PERMANENT, "SM rejected, duplicate SM"),
    198: (ErrorClass.PERMANENT, "TP-VPF not supported"),
    199: (ErrorClass.PERMANENT, "TP-VP not supported"),
    208: (ErrorClass.MODEM, "(U)SIM SMS storage full"),
    210: (ErrorClass.MODEM, "error in MS"),
    211: (ErrorClass.TRANSIENT, "memory capacity exceeded"),
    255: (ErrorClass.TRANSIENT, "unspecified error cause"),
    300: (ErrorClass.MODEM, "ME failure"),
    301: (ErrorClass.MODEM, "SMS service of ME reserved"),
    302: (ErrorClass.MODEM, "operation not allowed"),
    303: (ErrorClass.MODEM, "operation not supported"),
    304: (ErrorClass.PERMANENT, "invalid PDU mode parameter"),
    305: (ErrorClass.PERMANENT, "invalid text mode parameter"),
    310: (ErrorClass.MODEM, "(U)SIM not inserted"),
    311: (ErrorClass.MODEM, "(U)SIM PIN required"),
    312: (ErrorClass.MODEM, "PH-(U)SIM PIN required"),
    313: (ErrorClass.MODEM, "(U)SIM failure"),
    314: (ErrorClass.MODEM, "(U)SIM busy"),
    315: (ErrorClass.MODEM, "(U)SIM wrong"),
    316: (ErrorClass.MODEM, "(U)SIM PUK required"),
    320: (ErrorClass.MODEM, "memory failure"),
    321: (ErrorClass.MODEM, "invalid memory index"),
    322: (ErrorClass.MODEM, "memory full"),
    330: (ErrorClass.MODEM, "SMSC address unknown"),
    331: (ErrorClass.TRANSIENT, "no network service"),
    332: (ErrorClass.TRANSIENT, "network timeout"),
    340: (ErrorClass.MODEM, "no +CNMA acknowledgement expected"),
    500: (ErrorClass.TRANSIENT, "unknown error"),
}


def classify_cms(code: int | None) -> tuple[ErrorClass, str]:
    """Class and meaning of a CMS error code; unknown codes are treated as transient."""
    if code is None:
        return ErrorClass.TRANSIENT, "ERROR without a code"
    if code in CMS_MEANINGS:
        return CMS_MEANINGS[code]
    if 512 <= code:
        return ErrorClass.TRANSIENT, "manufacturer specific error"
    if 128 <= code <= 255:
        return ErrorClass.PERMANENT, "TPDU error"
    return ErrorClass.TRANSIENT, "unspecified error"

