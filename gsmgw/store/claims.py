"""Claims and leases: a modem takes a queued message under a lease, marks its parts
``sending`` before any PDU is written, and settles the claim with what the send
achieved. A host that crashed leaves its claims to ``recover``: parts that were
being sent become ``unknown`` (never resent blindly), untouched ones requeue.

A claim is fenced: marking its parts ``sending`` (the last step before a PDU is
written) and settling it both check, under the message's row lock, that the
claim is still this host's. A host whose claim was recovered by another (its
lease ran out and its liveness lease was gone) therefore never writes that PDU,
and its settle keeps only what its send proved: a part that left the modem."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, or_, select, update
from sqlalchemy.sql.expression import Executable

from gsmgw.domain import EventType, MessageState
from gsmgw.store import tables as t
from gsmgw.store.events import insert_message_events
from gsmgw.store.executor import Executor, batchable
from gsmgw.store.messages import settle_states
from gsmgw.store.ownership import live_hosts
from gsmgw.store.prepared import prebuilt, run, update_message
from gsmgw.store.records import CareRecord, ClaimCare, ClaimedMessage, NextMark, PartResult, utcnow
from gsmgw.store.reports import ReportsRepo, lock_message, lock_report_matching
from gsmgw.store.simcare import care_terms, defer_in, record_in

log = logging.getLogger(__name__)


class ClaimsRepo:
    def __init__(self, db: Executor, host: str, reports: ReportsRepo) -> None:
        self.db = db
        self.host = host
        self.reports = reports

    @batchable
    def claim_next(
        self,
        modem_id: str,
        *,
        lease_s: float,
        group: str = "default",
        now: dt.datetime | None = None,
        avoid_grace_s: float = 10.0,
        mark_sending: bool = False,
        care: ClaimCare | None = None,
    ) -> ClaimedMessage | None:
        """Take the most urgent queued message this modem may send, under a lease.

        With ``mark_sending`` its parts are also marked ``sending`` in the same
        commit (the caller writes the PDU next, so a crash makes them unknown).

        A message whose last attempt failed transiently on this SIM is left to the
        other SIMs for ``avoid_grace_s`` after it became due again; then this SIM
        may retry it too (it may be the only one).

        ``care`` (SIM care, issue 20) adds the SIM's pacing and calendar caps as
        extra terms of the same query, and defers a message whose recipient is in
        quiet hours instead of claiming it (see :meth:`_care_block`).

        Without ``mark_sending`` (a claim ahead, while another message is on the
        air) the commit does not wait for the disk on SQLite (``tx(durable=False)``):
        nothing of the claim is written to a modem until a later, durable commit
        marks it ``sending`` (and WAL commits are kept in order), so a power cut that
        undoes the claim only puts the message back in the queue, as it was. This
        spares one fsync per message on the busy path (issue 17).
        """
        now = now or utcnow()
        grace_cutoff = now - dt.timedelta(seconds=avoid_grace_s)
        with self.db.tx(durable=mark_sending) as conn:
            alternatives = self._care_block(conn, modem_id, care)
            if alternatives is None:
                return None
            # Built once (_S.claim); SIM care's extra terms go on as _S.claim.where(*terms).
            q = _S.claim
            params = {"b_now": now, "b_modem": modem_id, "b_grace": grace_cutoff, "b_group": group}
            for _attempt in range(5 if care is None or care.window is None else 50):
                msg_id = None
                for terms in alternatives:  # [[]] without SIM care: the query as it is
                    msg_id = run(conn, q.where(*terms) if terms else q, params).scalar()
                    if msg_id is not None:
                        break
                if msg_id is None:
                    return None
                if care is not None and care.window is not None and self._deferred(conn, msg_id, care, now):
                    continue
                res = run(
                    conn, _S.take, {"b_mid": msg_id, "b_modem": modem_id, "b_host": self.host,
                              "b_until": now + dt.timedelta(seconds=lease_s), "b_now": now},
                ).first()
                if res is None:
                    continue  # another host took it between select and update
                seqs = list(run(conn, _S.queued_seqs, {"b_mid": msg_id}).scalars())
                if mark_sending and seqs:
                    # The idle path: claim and mark in one commit, the PDU follows at once.
                    mark_sending_in(conn, msg_id, seqs, modem_id, now)
                return ClaimedMessage(
                    id=res.id,
                    to_number=res.to_number,
                    text=res.text,
                    parts_total=res.parts_total,
                    flash=res.flash,
                    delivery_report=res.delivery_report,
                    resend_unknown=res.resend_unknown,
                    concat_ref=res.concat_ref,
                    attempts=res.attempts,
                    valid_until=res.valid_until,
                    pending_seqs=seqs,
                )
        return None

    # --- SIM care (issue 20) ------------------------------------------------------------

    def _care_block(self, conn: Connection, modem_id: str, care: ClaimCare | None) -> list[list[Any]] | None:
        """The claim's extra terms for this SIM's pacing and caps, as alternatives
        tried in order (see simcare.care_terms); ``None``: nothing may go."""
        if care is None:
            return [[]]
        return care_terms(conn, modem_id, care, lock=not self.db.is_sqlite)

    def _deferred(self, conn: Connection, msg_id: str, care: ClaimCare, now: dt.datetime) -> bool:
        """Recipient-local quiet hours: a non-transactional message whose recipient's
        window is closed is left queued until it opens (``wait_reason`` says why)."""
        m = t.messages
        row = conn.execute(select(m.c.to_number, m.c.transactional).where(m.c.id == msg_id)).first()
        if row is None or row.transactional or care.window is None:
            return False
        opens = care.window(row.to_number, now)
        if opens is None:
            return False
        defer_in(conn, msg_id, opens, "recipient_quiet_hours")
        return True

    @batchable
    def mark_parts_sending(self, message_id: str, seqs: Sequence[int], modem_id: str,
                           attempt: int | None = None) -> bool:
        """Committed *before* any PDU is written: after a crash these parts are ``unknown``.

        ``False`` (nothing marked): the claim is no longer this host's on this modem
        (or, given ``attempt``, no longer that claim: ``ClaimedMessage.attempts``),
        and its PDUs must not be written."""
        now = utcnow()
        with self.db.tx() as conn:
            return mark_sending_in(conn, message_id, seqs, modem_id, now, holder=self.host, attempt=attempt)

    @batchable
    def settle_claim(
        self,
        message_id: str,
        results: Sequence[PartResult],
        *,
        retry_at: dt.datetime | None = None,
        report_window_s: float = 3 * 86400.0,
        then_mark: NextMark | None = None,
        uncount_attempt: bool = False,
        care: CareRecord | None = None,
        held_as: tuple[str, int] | None = None,
    ) -> MessageState:
        """Record what a send achieved and close the claim, in one transaction.

        Parts named in ``results`` take their state (SENT with TP-MR, FAILED, UNKNOWN,
        or QUEUED for a transient error). Parts still ``sending`` that are not named
        were never written and go back to ``queued``. Then the message is settled:
        final when its parts say so, else requeued at ``retry_at`` (pinned to the
        same SIM if some part already left, so that the phone can reassemble).

        ``then_mark`` marks the modem's next claim ``sending`` in the same commit
        (the pipelined send loop) and says whether it did; ``uncount_attempt``
        gives back the attempt of a claim that was released unwritten.
        ``care`` adds the parts sent to the SIM's counters and cost (SIM care).

        A claim that is no longer this host's (see the module doc) keeps only its
        SENT parts, where recovery had called them unknown; the message stays with
        whoever holds it now. ``held_as`` = (modem, ``ClaimedMessage.attempts``)
        names the claim exactly: the same message claimed again after a recovery,
        by this host, is another claim.
        """
        with self.db.tx() as conn:
            if care is not None:
                sent = sum(1 for r in results if r.state is MessageState.SENT)
                record_in(conn, care, sent, message_id)
            final = self.settle_in(conn, message_id, results, retry_at=retry_at,
                                   report_window_s=report_window_s, uncount_attempt=uncount_attempt,
                                   holder=self.host, held_as=held_as)
            if then_mark is not None:
                then_mark.taken = mark_sending_in(conn, then_mark.message_id, then_mark.seqs, then_mark.modem_id,
                                                  utcnow(), holder=self.host, attempt=then_mark.attempt)
            return final

    def settle_in(
        self,
        conn: Connection,
        message_id: str,
        results: Sequence[PartResult],
        *,
        retry_at: dt.datetime | None = None,
        report_window_s: float = 3 * 86400.0,
        uncount_attempt: bool = False,
        holder: str | None = None,
        held_as: tuple[str, int] | None = None,
    ) -> MessageState:
        """settle_claim's work on an open connection (recover() settles through it too).

        With ``holder`` (a host; ``held_as`` as there), only a claim it still holds is
        settled (see :meth:`settle_claim`); recover() passes none: it settles the
        claims it locked.
        Its statements are built once (``_S``): per send this runs on the hot path."""
        sent_seqs = [r.seq for r in results if r.state is MessageState.SENT]
        if sent_seqs and conn.dialect.name != "sqlite":
            # A report of these parts may be in a transaction of its own right now.
            lock_report_matching(conn, conn.execute(_MODEMS_OF_PARTS, {"b_mid": message_id,
                                                                          "b_seqs": sent_seqs}).scalars().all())
        now = utcnow()
        if holder is None:
            lock_message(conn, message_id)  # see ReportsRepo.apply_in
        else:  # the same row lock (PostgreSQL), and whose claim it is now
            held = run(conn, _S.holder_of, {"b_mid": message_id}).first()
            modem, attempt = held_as if held_as is not None else (None, None)
            if not _still_held(held, holder, modem, attempt):
                return self._settle_lost(conn, message_id, results, held, now)
        for r in results:
            if r.state is MessageState.SENT:
                run(conn, _S.part_sent, {"b_mid": message_id, "b_seq": r.seq, "b_tp_mr": r.tp_mr, "b_now": now})
            else:
                run(conn, _S.part_other, {"b_mid": message_id, "b_seq": r.seq, "b_state": r.state,
                                             "b_code": r.error_code, "b_text": r.error_text})
        states = [s for (s,) in run(conn, _S.part_states, {"b_mid": message_id})]
        if MessageState.SENDING.value in states:  # parts never written (not in results): queued again
            run(conn, _S.unsent_back, {"b_mid": message_id})
            states = [MessageState.QUEUED.value if s == MessageState.SENDING.value else s for s in states]
        settled = settle_states(states)
        if settled in (MessageState.FAILED, MessageState.UNKNOWN):
            # The rest was never written; it will not be either.
            run(conn, _S.rest_cancelled, {"b_mid": message_id})
        last_err = next((r for r in reversed(results) if r.error_code), None)
        values: dict[str, Any] = {"updated_at": now, "lease_owner": None, "lease_until": None}
        if last_err is not None:
            values.update(error_code=last_err.error_code, error_text=last_err.error_text)
        if settled is None:
            values.update(state=MessageState.QUEUED, send_at=retry_at or now)
            modem_id = run(conn, _S.modem_of, {"b_mid": message_id}).scalar()
            if last_err is not None:
                values["last_failed_modem"] = modem_id  # other SIMs get the retry first
            if MessageState.SENT in states:
                values["sim_requested"] = modem_id  # the rest from the same SIM, or no reassembly
            else:
                values["modem_id"] = None
            final = MessageState.QUEUED
        else:
            values["state"] = settled
            if settled is MessageState.SENT:
                values.update(sent_at=now, error_code=None, error_text=None)
            final = settled
        update_message(conn, message_id, values, uncount_attempt=uncount_attempt)
        if final is not MessageState.QUEUED:
            insert_message_events(conn, EventType.for_message(final), [message_id], now)
        if any(r.state is MessageState.SENT for r in results):
            if self.reports.match_waiting(conn, message_id, report_window_s) and final is MessageState.SENT:
                # A report that came before this commit may have made it delivered or failed.
                final = MessageState(run(conn, _S.message_state, {"b_mid": message_id}).scalar_one())
        return final

    def _settle_lost(self, conn: Connection, message_id: str, results: Sequence[PartResult],
                     held: Any, now: dt.datetime) -> MessageState:
        """Settle a claim another host recovered meanwhile: record the parts this send
        proved sent where recovery had to call them unknown, and leave the rest (the
        message may be queued or held by another modem now)."""
        state = None if held is None else MessageState(held.state)
        log.warning("message %s: this host's claim was taken over (now %s, held by %s); "
                    "keeping only what the send proved", message_id,
                    "gone" if state is None else state.value, None if held is None else held.lease_owner)
        sent = [r for r in results if r.state is MessageState.SENT]
        if state is not MessageState.UNKNOWN or not sent:
            return state or MessageState.UNKNOWN
        for r in sent:
            run(conn, _S.unknown_part_sent, {"b_mid": message_id, "b_seq": r.seq, "b_tp_mr": r.tp_mr, "b_now": now})
        if settle_states([s for (s,) in run(conn, _S.part_states, {"b_mid": message_id})]) is not MessageState.SENT:
            return state
        update_message(conn, message_id, {"state": MessageState.SENT, "sent_at": now, "updated_at": now,
                                          "error_code": None, "error_text": None})
        insert_message_events(conn, EventType.for_message(MessageState.SENT), [message_id], now)
        return MessageState.SENT

    @batchable
    def claims_of(self, modem_id: str) -> list[dict[str, Any]]:
        """This host's claims on one modem: its messages in ``sending``, oldest first."""
        m = t.messages
        q = (
            select(m)
            .where(m.c.state == MessageState.SENDING, m.c.modem_id == modem_id, m.c.lease_owner == self.host)
            .order_by(m.c.id)
        )
        with self.db.read() as conn:
            return [dict(r._mapping) for r in conn.execute(q).all()]

    @batchable
    def renew_lease(self, message_id: str, lease_s: float) -> None:
        with self.db.tx() as conn:
            run(conn, _S.renew, {"b_mid": message_id, "b_host": self.host,
                                    "b_until": utcnow() + dt.timedelta(seconds=lease_s)})

    def recover(self, *, only_expired_leases: bool = False, exclusive: bool = False) -> dict[str, int]:
        """After a crash: parts left ``sending`` become ``unknown``; untouched claims requeue.

        Only claims whose owner is provably gone are touched. At start
        (``only_expired_leases=False``) that is this host's own claims (the caller
        holds this host's lease, so no other process runs as this host), and with
        ``exclusive`` (the caller holds the SQLite store's lock) every claim in the
        store. Another host's claim is settled only once its lease has run out *and*
        that host holds no liveness lease (PostgreSQL; see store.ownership): a live
        host whose renewals lag keeps its work.
        """
        now = utcnow()
        m, p = t.messages, t.message_parts
        counts = {"unknown": 0, "requeued": 0, "sent": 0}
        with self.db.tx() as conn:
            sending = m.c.state == MessageState.SENDING
            if exclusive and not only_expired_leases:
                cond = sending
            else:
                cond = and_(sending, m.c.lease_until < now)
                if not only_expired_leases:
                    cond = or_(cond, and_(sending, m.c.lease_owner == self.host))
            rows = conn.execute(select(m.c.id, m.c.lease_owner).where(cond)).all()
            if not self.db.is_sqlite:
                live = live_hosts(conn, {r.lease_owner for r in rows if r.lease_owner != self.host})
                rows = [r for r in rows if r.lease_owner == self.host or r.lease_owner not in live]
            # Lock them and look again (PostgreSQL; SQLite's one writer already excludes
            # both): another host's recover may be settling one right now (skipped, it
            # is that host's to finish), or may have settled it since the read above,
            # and a modem claimed it again (no longer expired, or held by another).
            owner_of = {r.id: r.lease_owner for r in rows}
            rows = [r for r in conn.execute(
                select(m.c.id, m.c.resend_unknown, m.c.lease_owner)
                .where(cond, m.c.id.in_(list(owner_of))).with_for_update(skip_locked=True)
            ).all() if r.lease_owner == owner_of[r.id]] if owner_of else []
            for row in rows:
                # Resendable messages go back to the queue; others' in-flight parts are unknown.
                target = MessageState.QUEUED if row.resend_unknown else MessageState.UNKNOWN
                code = "resent_after_crash" if row.resend_unknown else "unknown_after_crash"
                seqs = conn.execute(
                    select(p.c.seq).where(p.c.message_id == row.id, p.c.state == MessageState.SENDING)
                ).scalars()
                results = [
                    PartResult(seq, target, error_code=code,
                               error_text="the gateway stopped while this part was being sent; "
                               "it may or may not have left the modem")
                    for seq in seqs
                ]
                final = self.settle_in(conn, row.id, results)
                if final is MessageState.QUEUED:
                    counts["requeued"] += 1
                elif final is MessageState.UNKNOWN:
                    counts["unknown"] += 1
                else:
                    counts["sent"] += 1
        if any(counts.values()):
            log.warning("recovered claims after restart: %s", counts)
        return counts


# --- statements of the send path, built once ----------------------------------------
# SQLAlchemy keys its compiled-statement cache on a statement's structure; a
# statement object built once with bind parameters skips rebuilding and re-hashing
# it on every call (most of the store's CPU per send was that).


# The modems a settle's sent parts went out on (PostgreSQL only: the report-matching lock).
_MODEMS_OF_PARTS = select(t.message_parts.c.modem_id).distinct().where(
    t.message_parts.c.message_id == bindparam("b_mid"),
    t.message_parts.c.seq.in_(bindparam("b_seqs", expanding=True)),
    t.message_parts.c.modem_id.is_not(None))


class _S:
    p, m = t.message_parts, t.messages
    part_sent = (
        update(p).where(p.c.message_id == bindparam("b_mid"), p.c.seq == bindparam("b_seq"))
        .values(state=MessageState.SENT.value, tp_mr=bindparam("b_tp_mr"), sent_at=bindparam("b_now"),
                error_code=None, error_text=None)
    )
    part_other = (
        update(p).where(p.c.message_id == bindparam("b_mid"), p.c.seq == bindparam("b_seq"))
        .values(state=bindparam("b_state"), error_code=bindparam("b_code"), error_text=bindparam("b_text"))
    )
    unsent_back = (
        update(p).where(p.c.message_id == bindparam("b_mid"), p.c.state == MessageState.SENDING.value)
        .values(state=MessageState.QUEUED.value)
    )
    part_states = select(p.c.state).where(p.c.message_id == bindparam("b_mid"))
    rest_cancelled = (
        update(p).where(p.c.message_id == bindparam("b_mid"), p.c.state == MessageState.QUEUED.value)
        .values(state=MessageState.CANCELLED.value, error_code="not_sent",
                error_text="not sent because an earlier part did not go through")
    )
    renew = (
        update(m).where(m.c.id == bindparam("b_mid"), m.c.lease_owner == bindparam("b_host"))
        .values(lease_until=bindparam("b_until"))
    )
    modem_of = select(m.c.modem_id).where(m.c.id == bindparam("b_mid"))
    # Whose claim a message is, under its row lock (PostgreSQL): the fence of the
    # settle and of the mark (see _still_held).
    holder_of = (select(m.c.state, m.c.lease_owner, m.c.modem_id, m.c.attempts)
                 .where(m.c.id == bindparam("b_mid")).with_for_update())
    unknown_part_sent = (
        update(p).where(p.c.message_id == bindparam("b_mid"), p.c.seq == bindparam("b_seq"),
                        p.c.state == MessageState.UNKNOWN.value)
        .values(state=MessageState.SENT.value, tp_mr=bindparam("b_tp_mr"), sent_at=bindparam("b_now"),
                error_code=None, error_text=None)
    )
    message_state = select(m.c.state).where(m.c.id == bindparam("b_mid"))
    # The claim: the most urgent queued message this modem may take (see claim_next).
    claim = (
        select(m.c.id)
        .where(
            m.c.state == MessageState.QUEUED.value,
            m.c.send_at <= bindparam("b_now"),
            # coalesce() keeps this term off the expiry index: the queue must be
            # walked in claim order (ix_messages_claim). Left to itself, SQLite
            # searches by (state, valid_until) and sorts the whole queue, which
            # with a million queued costs seconds per claim.
            func.coalesce(m.c.valid_until, m.c.valid_until) > bindparam("b_now"),
            or_(m.c.sim_requested.is_(None), m.c.sim_requested == bindparam("b_modem")),
            or_(
                m.c.last_failed_modem.is_(None),
                m.c.last_failed_modem != bindparam("b_modem"),
                m.c.sim_requested == bindparam("b_modem"),
                m.c.send_at <= bindparam("b_grace"),
            ),
            or_(
                m.c.route_group.is_(None),
                m.c.route_group == bindparam("b_group"),
                and_(m.c.group_until.is_not(None), m.c.group_until <= bindparam("b_now")),
            ),
            or_(
                m.c.preferred_sim.is_(None),
                m.c.preferred_sim == bindparam("b_modem"),
                m.c.prefer_until <= bindparam("b_now"),
            ),
        )
        .order_by(m.c.priority.desc(), m.c.created_at)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    take = (
        update(m)
        .where(m.c.id == bindparam("b_mid"), m.c.state == MessageState.QUEUED.value)
        .values(state=MessageState.SENDING.value, modem_id=bindparam("b_modem"), lease_owner=bindparam("b_host"),
                lease_until=bindparam("b_until"), attempts=m.c.attempts + 1, updated_at=bindparam("b_now"))
        .returning(m.c.id, m.c.to_number, m.c.text, m.c.parts_total, m.c.flash, m.c.delivery_report,
                   m.c.resend_unknown, m.c.concat_ref, m.c.attempts, m.c.valid_until)
    )
    queued_seqs = (
        select(p.c.seq).where(p.c.message_id == bindparam("b_mid"), p.c.state == MessageState.QUEUED.value)
        .order_by(p.c.seq)
    )
    mark_sending = (
        update(p).where(p.c.message_id == bindparam("b_mid"), p.c.seq.in_(bindparam("b_seqs", expanding=True)))
        .values(state=MessageState.SENDING.value, modem_id=bindparam("b_modem"), sending_at=bindparam("b_now"))
    )
    # The same for one part (most messages): no expanding IN, so the fast path takes it.
    mark_one_sending = (
        update(p).where(p.c.message_id == bindparam("b_mid"), p.c.seq == bindparam("b_seq"))
        .values(state=MessageState.SENDING.value, modem_id=bindparam("b_modem"), sending_at=bindparam("b_now"))
    )


for _name, _stmt in vars(_S).items():
    if isinstance(_stmt, Executable) and not _name.startswith("_"):
        prebuilt(_stmt)


def _still_held(held: Any, host: str, modem_id: str | None, attempt: int | None) -> bool:
    """Whether ``held`` (a row of ``_S.holder_of``) is still ``host``'s claim, and, where
    given, on ``modem_id`` and the claim of that ``attempt`` (ClaimedMessage.attempts)."""
    return (held is not None and held.state == MessageState.SENDING.value and held.lease_owner == host
            and (modem_id is None or held.modem_id == modem_id)
            and (attempt is None or held.attempts == attempt))


def mark_sending_in(conn: Connection, message_id: str, seqs: Sequence[int], modem_id: str, now: dt.datetime,
                    *, holder: str | None = None, attempt: int | None = None) -> bool:
    """Mark these parts ``sending`` (committed before their PDUs are written).

    With ``holder``, only if the claim is still that host's on this modem, and
    given ``attempt`` still that claim (under the message's row lock on
    PostgreSQL, so that a recover cannot settle it between this check and the
    commit); returns whether the parts were marked."""
    if holder is not None and not _still_held(run(conn, _S.holder_of, {"b_mid": message_id}).first(),
                                              holder, modem_id, attempt):
        return False
    if len(seqs) == 1:
        run(conn, _S.mark_one_sending, {"b_mid": message_id, "b_seq": seqs[0], "b_modem": modem_id, "b_now": now})
    else:
        run(conn, _S.mark_sending, {"b_mid": message_id, "b_seqs": list(seqs), "b_modem": modem_id, "b_now": now})
    return True


__all__ = ["ClaimsRepo"]
