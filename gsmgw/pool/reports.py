"""Status reports (SMS-STATUS-REPORT): decode, match to the part they report on, record.

They come three ways: routed directly with the URC (``+CDS: 25`` then the PDU),
stored and announced (``+CDSI: "SR",0``: read it, record it, then delete it),
or found by the inbound sweep when the announcement was lost. All three record
through :meth:`StatusReports.record`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from gsmgw.config import Config
from gsmgw.errors import CodecError, ModemError
from gsmgw.modem import StoredSms
from gsmgw.pool.slot import ModemSlot
from gsmgw.sms import StatusReport, decode_pdu
from gsmgw.store import Store

log = logging.getLogger(__name__)
msglog = logging.getLogger("gsmgw.messages")


# read(slot, index, storage) -> the stored PDU; None if it stays unreadable.
ReadFn = Callable[[ModemSlot, int, "str | None"], Awaitable["StoredSms | None"]]


class StatusReports:
    def __init__(self, config: Callable[[], Config], store: Store, *, read: ReadFn) -> None:
        self._config = config
        self.store = store
        # How an announced index is read (the inbound processor's, with its retries
        # of modules that announce before the write completes).
        self._read = read

    async def record(self, slot: ModemSlot, pdu_hex: str, tpdu_length: int | None,
                     index: int | None) -> bool:
        """Decode and record one status report; True once it is committed, or once
        it is known to be garbage when it came from storage (``index`` given), so
        that the caller deletes it rather than reading it again forever.

        A report from storage is committed without waiting for the disk, and True
        comes once it is on disk (``Store.synced``): usually with the next send's
        settle, whose commit syncs the WAL anyway; so the SIM's copy is deleted only
        after that, and a busy pool spends no fsync of its own on a report."""
        try:
            rep = decode_pdu(pdu_hex, tpdu_length=tpdu_length)
        except CodecError as exc:
            log.warning("modem %s: undecodable status report %s: %s", slot.id, pdu_hex[:80], exc)
            return index is not None
        if not isinstance(rep, StatusReport):
            log.info("modem %s: expected a status report, got %s", slot.id, rep.type)
            return False
        match = await self.store.call(
            self.store.reports.record_status_report,
            slot.id,
            tp_mr=rep.tp_mr,
            recipient=rep.recipient,
            status=rep.status,
            category=str(rep.category),
            meaning=rep.status_meaning,
            scts=rep.scts,
            discharge_at=rep.discharge_time,
            window_s=self._config().dispatch.status_report_window_s,
            durable=index is None,
        )
        if index is not None:
            try:
                await self.store.synced()
            except Exception as exc:  # the SIM keeps its copy: read again after a restart
                log.warning("modem %s: status report at %d recorded, not yet on disk (%s); kept on the SIM",
                            slot.id, index, exc)
                return False
        if match.message_id is None:
            log.info("modem %s: status report for tp_mr=%d to %s matched no message (kept)",
                     slot.id, rep.tp_mr, rep.recipient)
        elif match.new_state is not None:
            msglog.info("message %s -> %s (status report 0x%02X on %s)", match.message_id,
                        match.new_state.value, rep.status, slot.id,
                        extra={"message_id": match.message_id, "modem_id": slot.id,
                               "state": match.new_state.value})
        return True

    async def read_stored(self, slot: ModemSlot, index: int, storage: str | None) -> None:
        """A ``+CDSI``: read the report where it says (often "SR", not the SMS
        storage), record it, then delete it."""
        try:
            stored = await self._read(slot, index, storage)
        except ModemError as exc:
            log.warning("modem %s: could not read status report at %d: %s", slot.id, index, exc)
            return
        if stored is None:
            return
        if await self.record(slot, stored.pdu_hex, stored.tpdu_length, index):
            try:
                await slot.driver.delete_sms(index, storage)
            except ModemError as exc:
                log.warning("modem %s: could not delete status report at %d: %s", slot.id, index, exc)


__all__ = ["StatusReports"]
