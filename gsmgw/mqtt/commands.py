"""Command payloads -> plain values (pure, no I/O).

``{base}/send`` takes the native API's JSON body (``to``, ``text`` or ``template``
+ ``variables``, ``priority``, ``send_at``, ``valid_until``, ``ttl``, ``sim``,
``flash``, ``delivery_report``, ``transactional``, ``resend_unknown``,
``callback_url``) plus ``idempotency_key`` and the client's ``id`` (echoed in the
reply). Every value is checked by the intake service, exactly as for the API; here
only the JSON shape is. ``{base}/cancel`` takes ``{"id", "message_id"}``,
``{base}/ussd`` ``{"id", "sim", "code"}``, ``{base}/notify`` (Home Assistant's
notify entity) a plain text for the admin's ``notify_to`` numbers.
"""

from __future__ import annotations

import json
import re
from typing import Any

from gsmgw.intake import Recipient, SendRequest

MAX_PAYLOAD_BYTES = 256 * 1024
MAX_ID_CHARS = 200
SEND_FIELDS = frozenset({
    "to", "text", "template", "variables", "priority", "send_at", "valid_until", "ttl", "sim", "flash",
    "delivery_report", "transactional", "resend_unknown", "callback_url", "idempotency_key",
})
# A USSD code: digits, *, # and +, as a handset dials it (the API's rule).
_USSD = re.compile(r"[0-9*#+]{1,32}")


class CommandError(Exception):
    """A command refused: ``code``, a message for humans and the field at fault."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    def as_dict(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field:
            err["field"] = self.field
        return err


def decode(payload: bytes) -> dict[str, Any]:
    """A command's JSON object; CommandError for anything else."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise CommandError("payload_too_large", f"a command is at most {MAX_PAYLOAD_BYTES} bytes")
    try:
        text = payload.decode("utf-8")
        data = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CommandError("invalid_json", "the payload is not a JSON object (UTF-8)") from None
    if not isinstance(data, dict):
        raise CommandError("invalid_json", "the payload must be a JSON object")
    return data


def request_id(data: dict[str, Any]) -> str | int | None:
    """The client's ``id`` to echo (a string or an integer), else None."""
    rid = data.get("id")
    if isinstance(rid, bool) or not isinstance(rid, str | int):
        return None
    if isinstance(rid, str) and (len(rid) > MAX_ID_CHARS or not rid.isprintable()):
        return None
    return rid


def _recipients(to: Any) -> Any:
    if isinstance(to, list):
        return [Recipient(r.get("to"), r.get("variables")) if isinstance(r, dict) else r for r in to]
    return to


def send_request(data: dict[str, Any]) -> SendRequest:
    unknown = sorted(k for k in data if k not in SEND_FIELDS and k != "id")
    if unknown:
        raise CommandError("invalid_field", f"unknown field {unknown[0]!r}", field=unknown[0])
    if "to" not in data:
        raise CommandError("invalid_number", "to is required", field="to")
    for flag in ("flash", "transactional"):
        if flag in data and not isinstance(data[flag], bool):
            raise CommandError("invalid_field", f"{flag} must be true or false", field=flag)
    return SendRequest(
        to=_recipients(data["to"]), text=data.get("text"), template=data.get("template"),
        variables=data.get("variables"), priority=data.get("priority"), send_at=data.get("send_at"),
        valid_until=data.get("valid_until"), ttl_s=data.get("ttl"), sim=data.get("sim"),
        flash=bool(data.get("flash", False)), delivery_report=data.get("delivery_report"),
        transactional=bool(data.get("transactional", False)), resend_unknown=data.get("resend_unknown"),
        callback_url=data.get("callback_url"), idempotency_key=data.get("idempotency_key"), door="mqtt",
    )


def notify_request(payload: bytes, notify_to: tuple[str, ...]) -> tuple[str | int | None, SendRequest]:
    """Home Assistant's notify entity publishes the message text as is: it goes to
    the admin's ``notify_to`` numbers. A JSON object is taken as a send command."""
    if payload.lstrip().startswith(b"{"):
        data = decode(payload)
        return request_id(data), send_request(data)
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise CommandError("payload_too_large", f"a command is at most {MAX_PAYLOAD_BYTES} bytes")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError("invalid_text", "the message is not UTF-8 text", field="text") from None
    if not notify_to:
        raise CommandError("invalid_number", "[mqtt] notify_to names no recipient", field="to")
    return None, SendRequest(to=list(notify_to), text=text, door="mqtt")


def cancel_target(data: dict[str, Any]) -> str:
    mid = data.get("message_id")
    if not isinstance(mid, str) or not 0 < len(mid) <= 64 or not mid.isprintable():
        raise CommandError("invalid_field", "message_id must be a message id", field="message_id")
    return mid


def ussd_target(data: dict[str, Any], sims: set[str]) -> tuple[str, str]:
    sim, code = data.get("sim"), data.get("code")
    if not isinstance(sim, str) or sim not in sims:
        raise CommandError("unknown_sim", f"no modem with id {sim!r} on this gateway", field="sim")
    if not isinstance(code, str) or not _USSD.fullmatch(code):
        raise CommandError("invalid_field", "code must be a USSD code (0-9 * # +)", field="code")
    return sim, code
