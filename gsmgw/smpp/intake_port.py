"""The SMPP door's SubmitPort over the intake service (``gsmgw.intake``, the names of the brief).

The intake service validates, applies opt-out and admission and commits once; this
adapter turns an SMPP account into a ``Caller``, a :class:`Submission` into a
``SendRequest`` (``door="smpp"``, ``door_data`` for the receipts), and the intake's
refusals into SMPP statuses.
"""

from __future__ import annotations

from gsmgw.errors import AdmissionError, SmppError, ValidationError
from gsmgw.intake import Caller, IntakeService, SendRequest
from gsmgw.smpp.accounts import Account
from gsmgw.smpp.constants import Status
from gsmgw.smpp.server import Submitted
from gsmgw.smpp.submit import Submission

# ValidationError.code -> command_status.
VALIDATION_STATUS: dict[str, Status] = {
    "invalid_number": Status.RINVDSTADR,
    "invalid_text": Status.RINVMSGLEN,
    "text_too_long": Status.RINVMSGLEN,
    "invalid_time": Status.RINVSCHED,
    "opted_out": Status.RSUBMITFAIL,
    "unknown_sim": Status.RSUBMITFAIL,
    "forbidden": Status.RSUBMITFAIL,
}
# AdmissionError.code -> command_status: retry-later refusals.
ADMISSION_STATUS: dict[str, Status] = {
    "rate_limited": Status.RTHROTTLED,
    "quota_exceeded": Status.RMSGQFUL,
    "queue_full": Status.RMSGQFUL,
    "opted_out": Status.RSUBMITFAIL,
}


def status_of(exc: Exception) -> Status:
    code = str(getattr(exc, "code", ""))
    if isinstance(exc, ValidationError):
        if code == "invalid_time" and getattr(exc, "field", None) == "valid_until":
            return Status.RINVEXPIRY
        return VALIDATION_STATUS.get(code, Status.RSUBMITFAIL)
    return ADMISSION_STATUS.get(code, Status.RTHROTTLED)


class IntakePort:
    def __init__(self, intake: IntakeService) -> None:
        self.intake = intake

    @staticmethod
    def caller(account: Account) -> Caller:
        return Caller(id=account.id, name=account.system_id, scopes=account.scopes,
                      rate_per_s=account.rate_per_s, daily_quota=account.daily_quota)

    def take_request(self, account: Account) -> float:
        return float(self.intake.take_request(self.caller(account)))

    async def submit(self, account: Account, sub: Submission) -> Submitted:
        req = SendRequest(
            to=list(sub.to), text=sub.text, priority=sub.priority, send_at=sub.send_at,
            valid_until=sub.valid_until, flash=sub.flash, delivery_report=sub.delivery_report,
            idempotency_key=sub.idempotency_key, door="smpp", door_data=dict(sub.door_data))
        try:
            res = await self.intake.submit(self.caller(account), req)
        except (ValidationError, AdmissionError) as exc:
            raise SmppError(str(getattr(exc, "message", exc)), status=status_of(exc)) from None
        return Submitted(tuple(res.message_ids), str(res.batch_id))

    async def cancel(self, account: Account, message_id: str) -> bool:
        return bool(await self.intake.cancel(self.caller(account), message_id))
