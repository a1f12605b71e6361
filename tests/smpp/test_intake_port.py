"""The adapter to the intake service: an SMPP account as a Caller, a Submission as a
SendRequest, the intake's refusals as SMPP statuses."""

from __future__ import annotations

import types
from typing import Any

import pytest

from gsmgw.errors import AdmissionError, SmppError, ValidationError
from gsmgw.intake import Caller, SendRequest
from gsmgw.smpp.accounts import Account
from gsmgw.smpp.constants import Status
from gsmgw.smpp.intake_port import IntakePort
from gsmgw.smpp.submit import Submission


class Intake:
    def __init__(self) -> None:
        self.calls: list[tuple[Caller, SendRequest]] = []
        self.raise_: Exception | None = None

    def take_request(self, caller: Caller) -> float:
        return 0.25 if caller.rate_per_s else 0.0

    async def submit(self, caller: Caller, req: SendRequest) -> Any:
        if self.raise_ is not None:
            raise self.raise_
        self.calls.append((caller, req))
        return types.SimpleNamespace(batch_id="b1", message_ids=["m1"])

    async def cancel(self, caller: Caller, message_id: str) -> bool:
        return message_id == "m1"


ACCOUNT = Account("smpp1234abcd", "esme", frozenset({"send"}), rate_per_s=5, daily_quota=100)


async def test_submit_maps_to_send_request() -> None:
    intake = Intake()
    port = IntakePort(intake)
    sub = Submission(to=("+447700900123",), text="hi", flash=True, priority=9, delivery_report=True,
                     door_data={"system_id": "esme", "rd": 1}, idempotency_key="k")
    res = await port.submit(ACCOUNT, sub)
    assert (res.message_ids, res.batch_id) == (("m1",), "b1")
    caller, req = intake.calls[0]
    assert caller == Caller("smpp1234abcd", "esme", frozenset({"send"}), 5, 100)
    assert req.door == "smpp" and req.door_data == {"system_id": "esme", "rd": 1}
    assert (req.to, req.text, req.flash, req.priority, req.idempotency_key) == (["+447700900123"], "hi", True, 9, "k")
    assert port.take_request(ACCOUNT) == 0.25
    assert await port.cancel(ACCOUNT, "m1") and not await port.cancel(ACCOUNT, "m2")


@pytest.mark.parametrize(("exc", "status"), [
    (ValidationError("invalid_number", "no", field="to"), Status.RINVDSTADR),
    (ValidationError("text_too_long", "no", field="text"), Status.RINVMSGLEN),
    (ValidationError("invalid_time", "no", field="valid_until"), Status.RINVEXPIRY),
    (ValidationError("opted_out", "no", field="to"), Status.RSUBMITFAIL),
    (ValidationError("something_new", "no"), Status.RSUBMITFAIL),
    (AdmissionError("rate_limited", "no", 1.0), Status.RTHROTTLED),
    (AdmissionError("quota_exceeded", "no", 1.0), Status.RMSGQFUL),
    (AdmissionError("queue_full", "no", 1.0), Status.RMSGQFUL),
])
async def test_refusals_map_to_statuses(exc: Exception, status: Status) -> None:
    intake = Intake()
    intake.raise_ = exc
    with pytest.raises(SmppError) as err:
        await IntakePort(intake).submit(ACCOUNT, Submission(to=("+1",), text="x"))
    assert err.value.status == status
