"""What the SMPP door owes its accounts, rendered from outbox events (pure).

``render`` runs inside the store's fan-out transaction for each new event: a
message event of a message that came in through SMPP becomes a delivery receipt
for the account that submitted it (if its registered_delivery asked for one), an
``sms:received`` becomes an inbound deliver_sm for the account the routing rules
pick. Each is rendered once, to the exact deliver_sm parameters, so that every
retry sends the same PDU.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from gsmgw.config import SmppConfig, SmppRoute
from gsmgw.smpp.constants import (
    ESM_TYPE_DELIVERY_RECEIPT,
    ESM_TYPE_INTERMEDIATE,
    RD_INTERMEDIATE,
    RD_RECEIPT_ALWAYS,
    RD_RECEIPT_MASK,
    RD_RECEIPT_ON_FAILURE,
    MessageStateCode,
    Tag,
)
from gsmgw.smpp.message import (
    encode_text,
    error_number,
    receipt_safe,
    receipt_state,
    receipt_text,
)
from gsmgw.store.smpp_repo import SmppDelivery

DOOR = "smpp"
FINAL = frozenset({"delivered", "failed", "expired", "unknown", "cancelled"})
MAX_SHORT_MESSAGE = 254


def event_state(event_type: str) -> str | None:
    """``sms:delivered`` / ``message:delivered`` -> ``delivered``; None for other families."""
    family, _, state = event_type.partition(":")
    return state if family in ("sms", "message") and state else None


def _door_data(msg: dict[str, Any]) -> dict[str, Any] | None:
    if msg.get("door") not in (None, DOOR):
        return None
    raw = msg.get("door_data")
    if not raw:
        return None
    try:
        data = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return None
    if not isinstance(data, dict) or not data.get("system_id"):
        return None
    return data


def _addr(value: Any, default: tuple[str, int, int]) -> tuple[str, int, int]:
    if isinstance(value, list | tuple) and len(value) == 3 and value[0]:
        return str(value[0]), int(value[1]), int(value[2])
    return default


def _number(number: str) -> tuple[str, int, int]:
    """An E.164 number as an SMPP address: digits with ton 1 / npi 1."""
    if number.startswith("+") and number[1:].isdigit():
        return number[1:], 1, 1
    if number.isdigit():
        return number, 0, 1
    return number[:20], 5, 0  # alphanumeric


def _params(src: tuple[str, int, int], dst: tuple[str, int, int], *, esm_class: int, data_coding: int,
            short_message: bytes, tlvs: dict[int, bytes]) -> dict[str, Any]:
    return {
        "source_addr": src[0][:20], "source_addr_ton": src[1], "source_addr_npi": src[2],
        "destination_addr": dst[0][:20], "dest_addr_ton": dst[1], "dest_addr_npi": dst[2],
        "esm_class": esm_class, "data_coding": data_coding, "short_message": short_message.hex(),
        "tlvs": {str(int(k)): v.hex() for k, v in tlvs.items()},
    }


def pdu_from_json(data: dict[str, Any]) -> tuple[dict[str, Any], dict[int, bytes]]:
    """The stored form back to deliver_sm params and TLVs."""
    params = {k: v for k, v in data.items() if k not in ("tlvs", "short_message")}
    params["short_message"] = bytes.fromhex(data.get("short_message", ""))
    tlvs = {int(k): bytes.fromhex(v) for k, v in (data.get("tlvs") or {}).items()}
    return params, tlvs


def receipt_params(*, message_id: str, state: MessageStateCode, handset: tuple[str, int, int],
                   esme: tuple[str, int, int], submitted_at: dt.datetime, done_at: dt.datetime,
                   error_code: str | None, text: str, default_alphabet: str,
                   intermediate: bool = False) -> dict[str, Any]:
    """A receipt's deliver_sm: from the handset to the ESME's address, Appendix B text,
    receipted_message_id and message_state (and network_error_code on a failure)."""
    err = error_number(error_code)
    body = receipt_text(message_id=message_id, state=state, submitted_at=submitted_at, done_at=done_at,
                        err=err, text=receipt_safe(text, default_alphabet=default_alphabet))
    data_coding, octets = encode_text(body, default_alphabet=default_alphabet)
    tlvs = {Tag.RECEIPTED_MESSAGE_ID: message_id.encode("latin-1") + b"\0",
            Tag.MESSAGE_STATE: bytes((int(state),))}
    if err and error_code and error_code.startswith("report:"):
        tlvs[Tag.NETWORK_ERROR_CODE] = bytes((3,)) + err.to_bytes(2, "big")  # 3 = GSM
    esm = ESM_TYPE_INTERMEDIATE if intermediate else ESM_TYPE_DELIVERY_RECEIPT
    return _params(handset, esme, esm_class=esm, data_coding=data_coding, short_message=octets, tlvs=tlvs)


def wants_receipt(rd: int, state: str) -> bool:
    if state == "sent":
        return bool(rd & RD_INTERMEDIATE)
    want = rd & RD_RECEIPT_MASK
    if want == RD_RECEIPT_ALWAYS:
        return True
    return want == RD_RECEIPT_ON_FAILURE and state != "delivered"


def receipt_ids(msg: dict[str, Any], door_data: dict[str, Any]) -> list[str]:
    """The ids the ESME was given: the message's, the batch's (submit_multi), or one per
    part it submitted separately (a reassembled long message)."""
    ids = door_data.get("ids")
    if isinstance(ids, list) and ids:
        return [str(i) for i in ids]
    if door_data.get("multi"):
        return [str(msg["batch_id"])]
    return [str(msg["id"])]


def route_inbound(routes: tuple[SmppRoute, ...], *, sim: str, sender: str, text: str) -> SmppRoute | None:
    for r in routes:
        if r.sim and r.sim != sim:
            continue
        if r.sender_prefix and not sender.startswith(r.sender_prefix):
            continue
        if r.text_regex and not re.search(r.text_regex, text):
            continue
        return r
    return None


class Renderer:
    """``render(event, message, own_numbers)`` for ``store.smpp.fanout``."""

    def __init__(self, cfg: SmppConfig) -> None:
        self.cfg = cfg

    def __call__(self, event: Any, msg: dict[str, Any] | None, own: dict[str, str]) -> list[SmppDelivery]:
        if event.type == "sms:received" or event.type == "message:received":
            return self._inbound(event, own)
        state = event_state(event.type)
        if state is None or msg is None or (state not in FINAL and state != "sent"):
            return []
        dd = _door_data(msg)
        if dd is None:
            return []
        rd = int(dd.get("rd", 0))
        if not wants_receipt(rd, state):
            return []
        handset = _addr(dd.get("dst"), _number(str(msg["to_number"])))
        if dd.get("multi"):
            handset = _number(str(msg["to_number"]))
        esme = _addr(dd.get("src"), ("", 0, 0))
        code = receipt_state(state)
        done_at = msg.get("delivered_at") if state == "delivered" else None
        done_at = done_at or msg.get("updated_at") or event.created_at
        out = []
        for mid in receipt_ids(msg, dd):
            pdu = receipt_params(
                message_id=mid, state=code, handset=handset, esme=esme, submitted_at=msg["created_at"],
                done_at=done_at, error_code=msg.get("error_code") if state != "delivered" else None,
                text=str(msg.get("text") or ""), default_alphabet=self.cfg.default_alphabet,
                intermediate=state == "sent")
            out.append(SmppDelivery(str(dd["system_id"]), "receipt", mid, pdu))
        return out

    def _inbound(self, event: Any, own: dict[str, str]) -> list[SmppDelivery]:
        try:
            payload = json.loads(event.payload or "{}")
        except ValueError:
            return []
        if not isinstance(payload, dict) or not payload.get("id"):
            return []
        sim = str(payload.get("sim") or event.modem_id or "")
        sender = str(payload.get("from") or "")
        text = str(payload.get("text") or "")
        route = route_inbound(self.cfg.route, sim=sim, sender=sender, text=text)
        if route is None:
            return []
        if route.destination_addr:
            dst = _number(route.destination_addr)
        elif own.get(sim):
            dst = _number(own[sim])
        else:
            dst = (sim[:20], 5, 0)
        data_coding, octets = encode_text(text, default_alphabet=self.cfg.default_alphabet)
        tlvs: dict[int, bytes] = {}
        if len(octets) > MAX_SHORT_MESSAGE:
            tlvs[Tag.MESSAGE_PAYLOAD] = octets
            octets = b""
        pdu = _params(_number(sender), dst, esm_class=0, data_coding=data_coding, short_message=octets, tlvs=tlvs)
        return [SmppDelivery(route.system_id, "mo", str(payload["id"]), pdu)]
