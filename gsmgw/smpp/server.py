"""The SMPP 3.4 server: listener, registry of bound sessions, submits, deliver_sm pushers.

- **Submit**: a submit_sm becomes one call of the intake service (through a
  :class:`SubmitPort`), whose commit comes before the submit_sm_resp. A part of a
  long message split by the ESME is held in the store until the last comes
  (``[smpp] concat_policy = "reassemble"``), or sent on its own (``"separate"``).
- **Deliver**: an outbox consumer (``gsmgw.outbox``, cursor ``smpp``) turns each
  event into the deliver_sm it owes, committed in ``smpp_deliveries``; while an account has a receiver bound on this host, a pusher
  task claims its due deliveries under a lease and sends them as deliver_sm, each
  settled only by its deliver_sm_resp (retried with capped backoff otherwise; an
  ESME_RX_P_APPN answer gives up). Nothing is lost while no receiver is bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import secrets
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from gsmgw.backoff import backoff_s
from gsmgw.config import SmppConfig, parse_listen
from gsmgw.domain import EventType
from gsmgw.errors import SmppError
from gsmgw.outbox import OutboxConsumer, capped_backoff
from gsmgw.smpp.accounts import Account, AccountBook, account_of
from gsmgw.smpp.constants import (
    RD_RECEIPT_ALWAYS,
    RD_RECEIPT_MASK,
    RD_RECEIPT_ON_FAILURE,
    Command,
    MessageStateCode,
    Status,
)
from gsmgw.smpp.message import decode_octets, join_parts
from gsmgw.smpp.outbox import Renderer, pdu_from_json, receipt_params
from gsmgw.smpp.pdu import Pdu
from gsmgw.smpp.session import BindMode, Session, SessionClosed, status_name
from gsmgw.smpp.submit import Parsed, Submission, group_key, parse_submit
from gsmgw.store import OutboxEvent
from gsmgw.store.smpp_repo import SmppDelivery
from gsmgw.waits import wait_event

log = logging.getLogger(__name__)

# Answers of an ESME to deliver_sm that mean "never send this again".
PERMANENT_REFUSALS = frozenset({Status.RX_P_APPN})


@dataclass(frozen=True, slots=True)
class Submitted:
    message_ids: tuple[str, ...]
    batch_id: str


class SubmitPort(Protocol):
    """What the SMPP door needs from the intake service."""

    def take_request(self, account: Account) -> float:
        """0.0, or seconds to wait (the account's request rate)."""
        ...

    async def submit(self, account: Account, sub: Submission) -> Submitted:
        """Queue durably; SmppError(status) when refused."""
        ...

    async def cancel(self, account: Account, message_id: str) -> bool:
        ...


def new_part_id() -> str:
    """Ids of held parts look like message ids: time-ordered, 24 hex digits."""
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(6)}"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class SmppServer:
    def __init__(self, cfg: SmppConfig | Callable[[], SmppConfig], store: Any, port: SubmitPort) -> None:
        self._cfg = cfg if callable(cfg) else (lambda: cfg)
        self.store = store
        self.port = port
        self.accounts = AccountBook(store)
        self.sessions: set[Session] = set()
        self._by_account: dict[str, set[Session]] = {}
        self._pushers: dict[str, asyncio.Task[None]] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._server: asyncio.Server | None = None
        self._bg: list[asyncio.Task[None]] = []
        self._conn_tasks: set[asyncio.Task[None]] = set()
        self.bound_addresses: list[tuple[str, int]] = []
        self.consumer: OutboxConsumer | None = None
        self.deliver_sm_total = 0

    @property
    def cfg(self) -> SmppConfig:
        return self._cfg()

    # --- lifecycle --------------------------------------------------------------------

    async def start(self, listen: str | None = None) -> None:
        host, port = parse_listen(listen or self.cfg.listen)
        ctx = None
        if self.cfg.tls_cert_file:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(self.cfg.tls_cert_file, self.cfg.tls_key_file)
        await self.store.call(self.store.smpp.release_leases)
        self._server = await asyncio.start_server(self._accept, host, port, ssl=ctx,
                                                  limit=self.cfg.max_pdu_bytes + 1024)
        self.bound_addresses = [s.getsockname()[:2] for s in self._server.sockets]
        cfg = self.cfg
        # The door's cursor in the outbox: each event is turned into the deliver_sm it
        # owes (committed in smpp_deliveries) before the cursor moves past it.
        self.consumer = OutboxConsumer(
            "smpp", self.store, self._on_event, types=["sms:*"], poll_interval_s=cfg.poll_interval_s,
            backoff=capped_backoff(cfg.retry_initial_s, cfg.retry_max_s))
        await self.consumer.start()
        self._bg = [asyncio.create_task(self._reassembly_loop(), name="smpp-reassembly")]
        log.info("SMPP listening on %s%s", ", ".join(f"{h}:{p}" for h, p in self.bound_addresses),
                 " (TLS)" if ctx else "")

    @property
    def port_number(self) -> int:
        return self.bound_addresses[0][1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        if self.consumer is not None:
            await self.consumer.stop()
            self.consumer = None
        for t in self._bg:
            t.cancel()
        await asyncio.gather(*self._bg, return_exceptions=True)
        self._bg = []
        for t in list(self._pushers.values()):
            t.cancel()
        await asyncio.gather(*self._pushers.values(), return_exceptions=True)
        self._pushers.clear()
        # Tell bound ESMEs we go (unbind), then close whatever is left.
        await asyncio.gather(*(s.unbind() for s in list(self.sessions)), return_exceptions=True)
        for s in list(self.sessions):
            s.close()
        if self._conn_tasks:
            await asyncio.wait(self._conn_tasks, timeout=5.0)
        for t in list(self._conn_tasks):
            t.cancel()
        await asyncio.gather(*self._conn_tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(Exception):
            await self.store.call(self.store.smpp.release_leases)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self.sessions) >= self.cfg.max_connections:
            log.warning("SMPP: %d connections open, refusing %s", len(self.sessions),
                        writer.get_extra_info("peername"))
            writer.close()
            return
        session = Session(self, reader, writer)
        self.sessions.add(session)
        task = asyncio.current_task()
        if task is not None:
            self._conn_tasks.add(task)
        try:
            await session.run()
        finally:
            self.sessions.discard(session)
            if task is not None:
                self._conn_tasks.discard(task)

    # --- registry ----------------------------------------------------------------------

    def register(self, session: Session, account: Account, mode: BindMode) -> bool:
        """Called at bind: False when the account's bind limit is reached."""
        mine = self._by_account.setdefault(account.system_id, set())
        if account.max_binds and len(mine) >= account.max_binds:
            return False
        mine.add(session)
        return True

    def bound(self, session: Session) -> None:
        """The bind_resp went out: a receiver may now get what waits for it."""
        if session.can_receive and session.account is not None:
            self._ensure_pusher(session.account.system_id)

    def unregister(self, session: Session) -> None:
        if session.account is None:
            return
        mine = self._by_account.get(session.account.system_id)
        if mine is not None:
            mine.discard(session)
            if not mine:
                del self._by_account[session.account.system_id]

    def receivers(self, system_id: str) -> list[Session]:
        return [s for s in self._by_account.get(system_id, ()) if s.can_receive]

    def binds(self) -> list[dict[str, Any]]:
        return [{"system_id": s.account.system_id if s.account else None, "mode": str(s.mode), "peer": s.peer,
                 "submitted": s.submitted, "delivered": s.delivered} for s in self.sessions if s.mode]

    # --- submit ------------------------------------------------------------------------

    async def submit(self, account: Account, pdu: Pdu) -> Pdu:
        """submit_sm / submit_multi -> its response, after the durable commit."""
        wait_s = self.port.take_request(account)
        if wait_s > 0:
            return pdu.response(Status.RTHROTTLED)
        cfg = self.cfg
        try:
            parsed = parse_submit(pdu, system_id=account.system_id, now=utcnow(),
                                  default_alphabet=cfg.default_alphabet)
            if pdu.command_id == Command.SUBMIT_MULTI:
                if parsed.concat is not None:
                    raise SmppError("submit_multi with concatenation is not supported; send the text "
                                    "whole in message_payload", status=Status.RINVESMCLASS)
                res = await self.port.submit(account, parsed.submission)
                return pdu.response(message_id=res.batch_id, unsuccess_sme=[])
            if parsed.concat is None or cfg.concat_policy == "separate":
                res = await self.port.submit(account, parsed.submission)
                return pdu.response(message_id=res.message_ids[0])
            return await self._hold_part(account, pdu, parsed)
        except SmppError as exc:
            log.debug("smpp %s: %s refused: %s (%s)", account.system_id, pdu.name, exc, status_name(exc.status))
            return pdu.response(exc.status)

    async def cancel(self, account: Account, pdu: Pdu) -> Pdu:
        ok = await self.port.cancel(account, pdu.get("message_id", ""))
        return pdu.response(Status.ROK if ok else Status.RCANCELFAIL)

    async def _hold_part(self, account: Account, pdu: Pdu, parsed: Parsed) -> Pdu:
        c = parsed.concat
        assert c is not None
        key = group_key(account.system_id, parsed)
        sub = parsed.submission
        request = {
            "to": list(sub.to), "flash": sub.flash, "priority": sub.priority, "codec": parsed.codec,
            "send_at": sub.send_at.isoformat() if sub.send_at else None,
            "valid_until": sub.valid_until.isoformat() if sub.valid_until else None,
            "delivery_report": sub.delivery_report, "door_data": sub.door_data,
        }
        part_id, parts = await self.store.call(
            self.store.smpp.hold_part, system_id=account.system_id, group_key=key, seq=c.seq, total=c.total,
            part_id=new_part_id(), user_data=parsed.data.hex(), request=request)
        if parts is None:
            return pdu.response(message_id=part_id)
        status = await self._submit_group(account, parts, final_seq=c.seq)
        if status != Status.ROK:
            return pdu.response(status)
        return pdu.response(message_id=part_id)

    async def _submit_group(self, account: Account, parts: list[dict[str, Any]], *,
                            final_seq: int | None) -> int:
        """Queue a held group as one message, then forget its parts."""
        by_seq: dict[int, dict[str, Any]] = {}
        for p in parts:
            by_seq.setdefault(p["seq"], p)
        ordered = [by_seq[s] for s in sorted(by_seq)]
        first = ordered[0]
        key = first["group_key"]
        req = json.loads(first["request"])
        door_data = dict(req.get("door_data") or {})
        door_data["ids"] = [p["part_id"] for p in ordered]
        pieces = [(str(json.loads(p["request"]).get("codec", "gsm7")), bytes.fromhex(p["user_data"]))
                  for p in ordered]
        try:
            text = join_parts(pieces)
        except SmppError:  # each part alone was sound, the whole is not (a broken pair)
            text = "".join(decode_octets(d, c, part=True) for c, d in pieces)
        sub = Submission(
            to=tuple(req["to"]), text=text, flash=bool(req.get("flash")),
            priority=int(req.get("priority") or 0),
            send_at=dt.datetime.fromisoformat(req["send_at"]) if req.get("send_at") else None,
            valid_until=dt.datetime.fromisoformat(req["valid_until"]) if req.get("valid_until") else None,
            delivery_report=req.get("delivery_report"), door_data=door_data,
            # Replayed after a crash between the queueing and the forgetting: no duplicate.
            idempotency_key=f"smpp-parts:{key[:32]}:{first['id']}",
        )
        if sub.valid_until is not None and sub.valid_until <= utcnow():
            sub = replace(sub, valid_until=None)  # held past its validity: the default applies
        try:
            await self.port.submit(account, sub)
        except SmppError as exc:
            if exc.status in (Status.RTHROTTLED, Status.RMSGQFUL) and final_seq is not None:
                # The last part is refused for now; the ESME sends it again later.
                await self.store.call(self.store.smpp.drop_parts, key, seq=final_seq)
                return exc.status
            log.warning("smpp %s: a long message of %d parts refused after its parts were accepted: %s",
                        account.system_id, len(ordered), exc)
            await self._reject_parts(account, [p for p in ordered if p["seq"] != final_seq], sub)
            await self.store.call(self.store.smpp.drop_parts, key)
            return exc.status
        await self.store.call(self.store.smpp.drop_parts, key)
        return Status.ROK

    async def _reject_parts(self, account: Account, parts: list[dict[str, Any]], sub: Submission) -> None:
        """Parts acknowledged with ESME_ROK whose whole was refused: REJECTD receipts."""
        rd = int(sub.door_data.get("rd", 0)) & RD_RECEIPT_MASK
        if rd not in (RD_RECEIPT_ALWAYS, RD_RECEIPT_ON_FAILURE) or not parts:
            return
        src = sub.door_data.get("src") or ["", 0, 0]
        dst = sub.door_data.get("dst") or ["", 0, 0]
        now = utcnow()
        out = [
            SmppDelivery(account.system_id, "receipt", p["part_id"], receipt_params(
                message_id=p["part_id"], state=MessageStateCode.REJECTED, handset=tuple(dst),
                esme=tuple(src), submitted_at=p["created_at"], done_at=now, error_code=None,
                text=sub.text, default_alphabet=self.cfg.default_alphabet))
            for p in parts
        ]
        await self.store.call(self.store.smpp.add_deliveries, out)
        self._ensure_pusher(account.system_id)

    async def _reassembly_loop(self) -> None:
        """Groups whose missing parts never came are sent with what came."""
        while True:
            timeout_s = self.cfg.reassembly_timeout_s
            await asyncio.sleep(max(0.05, min(30.0, timeout_s / 4)))
            try:
                await self.flush_stale_parts()
            except Exception:
                log.exception("SMPP reassembly sweep failed")

    async def flush_stale_parts(self) -> int:
        cutoff = utcnow() - dt.timedelta(seconds=self.cfg.reassembly_timeout_s)
        groups = await self.store.call(self.store.smpp.stale_groups, older_than=cutoff)
        for parts in groups:
            system_id = parts[0]["system_id"]
            row = await self.store.call(self.store.smpp.get_account, system_id)
            if row is None:
                log.warning("smpp: dropping %d held parts of revoked account %r", len(parts), system_id)
                await self.store.call(self.store.smpp.drop_parts, parts[0]["group_key"])
                continue
            seqs = sorted({p["seq"] for p in parts})
            log.warning("smpp %s: parts %s of %d never all came; sending the %d that did as one message",
                        system_id, seqs, parts[0]["total"], len(seqs))
            await self._submit_group(account_of(row), parts, final_seq=None)
        return len(groups)

    # --- deliver -------------------------------------------------------------------------

    async def _on_event(self, ev: OutboxEvent) -> None:
        """One outbox event -> the deliver_sm it owes (a receipt, an inbound SMS), committed."""
        msg = None
        if ev.message_id:
            msg = await self.store.call(self.store.messages.get_message, ev.message_id)
        own: dict[str, str] = {}
        if msg is None and ev.type == EventType.SMS_RECEIVED:
            own = {str(m["id"]): str(m.get("own_number") or "")
                   for m in await self.store.call(self.store.modems.list_modems)}
        owed = Renderer(self.cfg)(ev, msg, own)
        if owed and await self.store.call(self.store.smpp.add_deliveries, owed, event_id=ev.id):
            for system_id in {d.system_id for d in owed}:
                self._ensure_pusher(system_id)

    def _ensure_pusher(self, system_id: str) -> None:
        wake = self._wake.setdefault(system_id, asyncio.Event())
        wake.set()
        task = self._pushers.get(system_id)
        if (task is None or task.done()) and self.receivers(system_id):
            self._pushers[system_id] = asyncio.create_task(self._push(system_id), name=f"smpp-push-{system_id}")

    async def _push(self, system_id: str) -> None:
        wake = self._wake.setdefault(system_id, asyncio.Event())
        rr = 0
        try:
            while True:
                receivers = self.receivers(system_id)
                if not receivers:
                    return
                wake.clear()
                cfg = self.cfg
                rows = await self.store.call(
                    self.store.smpp.claim_deliveries, system_id, limit=cfg.window * len(receivers),
                    lease_s=cfg.response_timeout_s * 3 + 30.0)
                if not rows:
                    due = await self.store.call(self.store.smpp.next_due, system_id)
                    wait_s = cfg.poll_interval_s * 20
                    if due is not None:
                        wait_s = min(wait_s, max(0.01, (due - utcnow()).total_seconds()))
                    await wait_event(wake, wait_s)
                    continue
                jobs = []
                for row in rows:
                    jobs.append(self._deliver_one(receivers[rr % len(receivers)], row))
                    rr += 1
                results = await asyncio.gather(*jobs)
                ok_ids = [row["id"] for row, ok in zip(rows, results, strict=True) if ok]
                if ok_ids:
                    await self.store.call(self.store.smpp.settle_deliveries, ok_ids)
        finally:
            if self._pushers.get(system_id) is asyncio.current_task():
                del self._pushers[system_id]

    async def _deliver_one(self, session: Session, row: dict[str, Any]) -> bool:
        """Send one claimed delivery; True if acknowledged (the caller settles it),
        else it is settled here for a retry or given up."""
        cfg = self.cfg
        params, tlvs = pdu_from_json(json.loads(row["pdu"]))
        try:
            status = await session.deliver(params, tlvs)
        except (TimeoutError, SessionClosed, ConnectionError, OSError) as exc:
            status, error = None, f"no deliver_sm_resp: {type(exc).__name__}"
        else:
            error = None if status == Status.ROK else f"deliver_sm_resp {status_name(status)}"
        if status == Status.ROK:
            self.deliver_sm_total += 1
            return True
        attempt = row["attempts"] + 1
        give_up = status in PERMANENT_REFUSALS
        delay = backoff_s(attempt, initial_s=cfg.retry_initial_s, max_s=cfg.retry_max_s)
        retry_at = None if give_up else utcnow() + dt.timedelta(seconds=delay)
        await self.store.call(self.store.smpp.settle_delivery, row["id"], ok=False, error=error, retry_at=retry_at)
        log.warning("smpp %s: deliver_sm %s (%s %s) failed: %s; %s", row.get("kind"), row["id"],
                    session.peer, row["ref"], error, "giving up" if give_up else f"retry in {delay:.0f} s")
        return False
