"""Table definitions (SQLAlchemy Core). Changes here need an alembic migration."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    true,
)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Stores naive UTC, returns aware UTC, on SQLite and PostgreSQL alike."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use UTC-aware datetimes")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC)


api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("key_hash", String(64), nullable=False),
    Column("scopes", String(100), nullable=False),
    Column("rate_per_s", Integer, nullable=False, default=0),
    Column("daily_quota", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
)

modems = Table(
    "modems",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("host", String(100), nullable=False, default=""),
    Column("port", String(255), nullable=False, default=""),
    Column("state", String(20), nullable=False),
    Column("state_reason", Text, nullable=False, default=""),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("manufacturer", String(100), nullable=False, default=""),
    Column("model", String(100), nullable=False, default=""),
    Column("firmware", String(100), nullable=False, default=""),
    Column("imei", String(20), nullable=False, default=""),
    Column("imsi", String(20), nullable=False, default=""),
    Column("iccid", String(24), nullable=False, default=""),
    Column("operator", String(100), nullable=False, default=""),
    Column("own_number", String(32), nullable=False, default=""),
    Column("signal_csq", Integer),
    Column("registration", String(32), nullable=False, default=""),
    Column("updated_at", UTCDateTime, nullable=False),
)

messages = Table(
    "messages",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("batch_id", String(32), nullable=False),
    Column("api_key_id", String(16)),
    Column("idempotency_key", String(200)),
    # On the row that carries idempotency_key: sha256 of the request (migration 0007),
    # so that the key reused with another request is a conflict, not a replay.
    Column("idempotency_fingerprint", String(64)),
    Column("to_number", String(32), nullable=False),
    Column("text", Text, nullable=False),
    Column("encoding", String(8), nullable=False),
    Column("parts_total", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("priority", Integer, nullable=False, default=0),
    Column("sim_requested", String(64)),
    Column("modem_id", String(64)),
    # The SIM whose last attempt met a transient error: others get the retry first.
    Column("last_failed_modem", String(64)),
    # Soft routing: a routing rule's SIM group and/or the SIM this number last used
    # (stickiness) get the message first; after prefer_until any SIM may take it.
    # group_until NULL with a route_group set = strict (that group only, ever).
    Column("route_group", String(64)),
    Column("group_until", UTCDateTime),
    Column("preferred_sim", String(64)),
    Column("prefer_until", UTCDateTime),
    Column("flash", Boolean, nullable=False, default=False),
    Column("delivery_report", Boolean, nullable=False, default=True),
    Column("transactional", Boolean, nullable=False, default=False),
    Column("resend_unknown", Boolean, nullable=False, default=False),
    Column("callback_url", Text),
    # Which door took the message and that door's own data (JSON text): migration 0004.
    Column("door", String(16)),
    Column("door_data", Text),
    Column("concat_ref", Integer, nullable=False, default=0),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("send_at", UTCDateTime, nullable=False),
    Column("valid_until", UTCDateTime, nullable=False),
    Column("lease_owner", String(100)),
    Column("lease_until", UTCDateTime),
    Column("sent_at", UTCDateTime),
    Column("delivered_at", UTCDateTime),
    Column("error_code", String(40)),
    Column("error_text", Text),
    # The campaign or recurring schedule that made the message, and what sending it
    # cost in millionths of the configured currency, all parts together (migration 0008).
    Column("campaign_id", String(32)),
    Column("schedule_id", String(32)),
    Column("cost_micros", BigInteger),
    UniqueConstraint("api_key_id", "idempotency_key", name="uq_messages_idempotency"),
)
# The dispatcher's claim query walks this index in priority order.
Index("ix_messages_claim", messages.c.state, messages.c.priority.desc(), messages.c.created_at)
Index("ix_messages_created", messages.c.created_at)
# The expiry sweep (migration 0003).
Index("ix_messages_expiry", messages.c.state, messages.c.valid_until)
# --- perfengine (issue 17): the sticky-SIM lookup reads the newest send to a number
# (migration 0015; it replaces ix_messages_to_number, whose lookups its first column serves).
Index("ix_messages_to_number_sent", messages.c.to_number, messages.c.sent_at)
# --- end perfengine
# A key's own messages, newest first (migration 0007).
Index("ix_messages_owner", messages.c.api_key_id, messages.c.id)
# A campaign's progress and a schedule's occurrences (migration 0008).
Index("ix_messages_campaign", messages.c.campaign_id, messages.c.state)
Index("ix_messages_schedule", messages.c.schedule_id)

message_parts = Table(
    "message_parts",
    metadata,
    Column(
        "message_id", String(32), ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("seq", Integer, primary_key=True),
    Column("state", String(16), nullable=False),
    Column("modem_id", String(64)),
    Column("tp_mr", Integer),
    Column("recipient", String(32), nullable=False),
    Column("sending_at", UTCDateTime),
    Column("sent_at", UTCDateTime),
    Column("delivered_at", UTCDateTime),
    Column("report_status", Integer),
    Column("error_code", String(40)),
    Column("error_text", Text),
)
# A status report's candidates: the parts sent on its modem with its TP-MR within the
# report window (migration 0016 added sent_at: the window is read, not the history).
Index("ix_message_parts_report", message_parts.c.modem_id, message_parts.c.tp_mr, message_parts.c.sent_at)

inbound_messages = Table(
    "inbound_messages",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("modem_id", String(64), nullable=False),
    Column("sender", String(32), nullable=False),
    Column("text", Text, nullable=False),
    Column("encoding", String(8), nullable=False),
    Column("parts_total", Integer, nullable=False, default=1),
    Column("parts_received", Integer, nullable=False, default=1),
    Column("complete", Boolean, nullable=False, default=True),
    # sha256 over the sender, the SCTS and the user data: the same SMS seen twice
    # (indication and sweep, or after a crash between commit and delete) stores once.
    Column("dedup_key", String(64), nullable=False, unique=True),
    Column("in_reply_to", String(32)),
    Column("sent_at", UTCDateTime),
    Column("received_at", UTCDateTime, nullable=False),
)
Index("ix_inbound_received", inbound_messages.c.received_at)

status_reports = Table(
    "status_reports",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("modem_id", String(64), nullable=False),
    Column("tp_mr", Integer, nullable=False),
    Column("recipient", String(32), nullable=False),
    Column("status", Integer, nullable=False),
    # TS 23.040 §9.2.3.15 class of TP-ST: delivered / pending / failed / failed-temporary.
    Column("category", String(20), nullable=False),
    Column("meaning", Text, nullable=False, default=""),
    Column("scts", UTCDateTime),
    Column("discharge_at", UTCDateTime),
    Column("message_id", String(32)),
    Column("seq", Integer),
    Column("received_at", UTCDateTime, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("type", String(40), nullable=False),
    Column("message_id", String(32)),
    Column("modem_id", String(64)),
    Column("payload", Text, nullable=False, default="{}"),
    Column("created_at", UTCDateTime, nullable=False),
)
Index("ix_events_created", events.c.created_at)


# --- inbound, opt-out, webhooks (issue 7) ---------------------------------------

# What reassembly needs to know about a stored message (filled in by migration 0002).
inbound_messages.append_column(Column("concat_ref", Integer))
# Sequence numbers of parts that never came ("2,3"), for an incomplete message.
inbound_messages.append_column(Column("missing", String(200), nullable=False, default=""))
Index("ix_inbound_sender", inbound_messages.c.sender)

# Every part of every inbound SMS, committed before it is deleted from the SIM. The
# unique dedup_key (receiving SIM, originator, SCTS, TP-DCS, TP-UD with its UDH)
# makes a part seen twice (+CMTI and sweep, or again after a crash between commit
# and AT+CMGD) a no-op. Parts wait here (message_id NULL) until all have come or the
# reassembly timeout passes, so a multipart SMS survives a restart half-way.
inbound_parts = Table(
    "inbound_parts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dedup_key", String(64), nullable=False, unique=True),
    Column("modem_id", String(64), nullable=False),
    Column("sender", String(32), nullable=False),
    Column("concat_ref", Integer),
    Column("concat_bits", Integer),
    Column("concat_total", Integer, nullable=False, default=1),
    Column("concat_seq", Integer, nullable=False, default=1),
    Column("encoding", String(8), nullable=False),
    Column("text", Text, nullable=False),
    Column("user_data", Text, nullable=False, default=""),  # hex, UDH removed
    Column("pdu", Text, nullable=False),  # as read from the modem, SMSC field included
    Column("scts", UTCDateTime),
    Column("received_at", UTCDateTime, nullable=False),
    Column("message_id", String(32)),
)
Index(
    "ix_inbound_parts_group",
    inbound_parts.c.modem_id,
    inbound_parts.c.sender,
    inbound_parts.c.concat_ref,
    inbound_parts.c.message_id,
)

optouts = Table(
    "optouts",
    metadata,
    Column("number", String(32), primary_key=True),
    # Last 8 digits: national and international renderings of a number meet here.
    Column("number_key", String(8), nullable=False),
    Column("source", String(16), nullable=False),  # keyword / api
    Column("keyword", String(40), nullable=False, default=""),
    Column("inbound_id", String(32)),
    Column("note", Text, nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
)
Index("ix_optouts_number_key", optouts.c.number_key)

# Outbox cursor: the last events.id fanned out into webhook_deliveries.
webhook_cursor = Table(
    "webhook_cursor",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("last_event_id", Integer, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", Integer, nullable=False),
    Column("event_type", String(40), nullable=False),
    Column("url", String(2000), nullable=False),
    Column("body", Text, nullable=False),  # the exact bytes sent on every attempt
    Column("state", String(12), nullable=False),  # pending / delivered / failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("lease_until", UTCDateTime),
    Column("lease_owner", String(100)),  # the host sending it now (Store.host)
    Column("last_status", Integer),
    Column("last_error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime),
    UniqueConstraint("event_id", "url", name="uq_webhook_deliveries_event_url"),
)
Index("ix_webhook_deliveries_due", webhook_deliveries.c.state, webhook_deliveries.c.next_attempt_at)

# --- the admin console (issue 18) -----------------------------------------------

# When someone read the message in the console's conversations (NULL = unread).
inbound_messages.append_column(Column("read_at", UTCDateTime))
# Throughput and delivery figures per time window ("sent in the last hour").
Index("ix_message_parts_sent_at", message_parts.c.sent_at)
# A batch's progress without walking the messages table.
Index("ix_messages_batch", messages.c.batch_id)

# --- SMPP door (issue 22) -------------------------------------------------------------


# SMPP accounts are their own credentials (SMPP 3.4 passwords are 8 characters at
# most, too short to be API keys): system_id + a slow hash of the password, with
# the same scopes, rate and daily quota as an API key, and a bind limit.
smpp_accounts = Table(
    "smpp_accounts",
    metadata,
    # "smpp" + 8 hex: what messages.api_key_id records for this account's messages.
    Column("id", String(16), primary_key=True),
    Column("system_id", String(16), nullable=False, unique=True),
    Column("password_hash", String(200), nullable=False),
    Column("scopes", String(100), nullable=False),
    Column("rate_per_s", Integer, nullable=False, default=0),
    Column("daily_quota", Integer, nullable=False, default=0),
    # Concurrent binds (any mode) on one host; 0 = no limit.
    Column("max_binds", Integer, nullable=False, default=0),
    Column("note", Text, nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
)

# Parts of a long message an ESME submitted one submit_sm at a time (UDH or sar_*),
# held here (not in memory) until the last one comes, so that an acknowledged part
# survives a crash. Deleted once the whole message is queued.
smpp_parts = Table(
    "smpp_parts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("system_id", String(16), nullable=False),
    # sha256 over system_id, source, destination, reference and total.
    Column("group_key", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("total", Integer, nullable=False),
    # The message_id given in this part's submit_sm_resp.
    Column("part_id", String(32), nullable=False),
    # The part's octets as sent (UDH removed), hex: decoded only once all are joined, so
    # that a GSM escape or a UTF-16 surrogate pair split across two parts survives.
    Column("user_data", Text, nullable=False),
    # JSON: what the whole message is sent with (addresses, times, flags).
    Column("request", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("group_key", "seq", name="uq_smpp_parts_group_seq"),
)
Index("ix_smpp_parts_created", smpp_parts.c.created_at)

# deliver_sm still to be acknowledged by an ESME (receipts and inbound SMS), fanned
# out of the events outbox under the cursor "smpp". Rendered once, so that every
# retry sends the same PDU; kept while no receiver of the account is bound.
smpp_deliveries = Table(
    "smpp_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("system_id", String(16), nullable=False),
    Column("event_id", Integer, nullable=False),
    Column("kind", String(8), nullable=False),  # receipt / mo
    # The receipted message id, or the inbound message id.
    Column("ref", String(40), nullable=False),
    Column("pdu", Text, nullable=False),  # JSON of the deliver_sm parameters
    Column("state", String(12), nullable=False),  # pending / delivered / failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("lease_owner", String(100)),
    Column("lease_until", UTCDateTime),
    Column("last_error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime),
    UniqueConstraint("event_id", "system_id", "ref", name="uq_smpp_deliveries_event"),
)
Index("ix_smpp_deliveries_due", smpp_deliveries.c.system_id, smpp_deliveries.c.state,
      smpp_deliveries.c.next_attempt_at)

# --- inbound rules (issue 19) ----------------------------------------------------------

# Tags inbound rules put on a message, comma-separated ("billing,vip"); NULL = none.
inbound_messages.append_column(Column("tags", String(500)))

# What a rule did with an inbound message: one row per (message, rule, action), so an
# event replayed after a crash does not tag, forward or reply twice; a command's exit
# status and (capped) output are recorded here too.
rule_runs = Table(
    "rule_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("inbound_id", String(32), nullable=False),
    Column("rule", String(64), nullable=False),
    Column("action", String(16), nullable=False),  # apply / reply / command
    Column("status", String(16), nullable=False),  # done / skipped / refused / exit:N / timeout / error
    Column("detail", Text, nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("inbound_id", "rule", "action", name="uq_rule_runs"),
)

# Auto-replies sent per (rule, sender): the rate limit's window lives in the store, so
# two gateways (or a gateway and a bot) answering each other stop after reply_limit.
rule_replies = Table(
    "rule_replies",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule", String(64), nullable=False),
    Column("sender", String(32), nullable=False),
    Column("inbound_id", String(32), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("inbound_id", "rule", name="uq_rule_replies"),
)
Index("ix_rule_replies_window", rule_replies.c.rule, rule_replies.c.sender, rule_replies.c.created_at)


# --- SIM care (issue 20): pacing, calendar caps, warm-up, recipient quiet hours --------

# One row per SIM (by modem id) that sent with SIM care on: when the store first saw
# it (the warm-up's day 0) and when its next paced (non-exempt) send may be claimed.
sim_care = Table(
    "sim_care",
    metadata,
    Column("modem_id", String(64), primary_key=True),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("next_send_at", UTCDateTime),
    Column("last_send_at", UTCDateTime),
)

# Parts sent per SIM and local calendar period ("2026-11-28" or "2026-11").
sim_usage = Table(
    "sim_usage",
    metadata,
    Column("modem_id", String(64), primary_key=True),
    Column("period", String(10), primary_key=True),
    Column("parts", Integer, nullable=False, default=0),
)

# First contact of a number by a SIM on a local day: distinct recipients per day and
# month are counted here, and "already contacted" is a primary-key probe.
sim_contacts = Table(
    "sim_contacts",
    metadata,
    Column("modem_id", String(64), primary_key=True),
    Column("number", String(32), primary_key=True),
    Column("day", String(10), primary_key=True),
)
Index("ix_sim_contacts_day", sim_contacts.c.modem_id, sim_contacts.c.day)

# Why a queued message waits past its send_at ("recipient_quiet_hours"); migration 0009.
messages.append_column(Column("wait_reason", String(40)))
# Cost and sent figures per day without walking the whole table.
Index("ix_messages_sent_at", messages.c.sent_at)
# A paced SIM may still take transactional messages: their own claim order, in a
# partial index (only transactional rows: no cost for the rest of the queue).
# Its PostgreSQL half (postgresql_where) is added by postgresql_options() when a PostgreSQL
# engine opens: naming a postgresql_* argument here would import SQLAlchemy's PostgreSQL
# dialect (~1.7 MB resident) into every SQLite gateway (issue 17).
claim_tx_index = Index("ix_messages_claim_tx", messages.c.state, messages.c.priority.desc(),
                       messages.c.created_at, sqlite_where=messages.c.transactional == true())


def postgresql_options() -> None:
    """Add the PostgreSQL-only index options (idempotent); called where a PostgreSQL
    connection is made (``repo.open_engine``, the alembic environment)."""
    options = claim_tx_index.dialect_options["postgresql"]  # imports the dialect
    if options["where"] is None:
        options["where"] = messages.c.transactional == true()

# --- schedules and keep-alive (issue 20 parts 2-3, migration 0010) ----------------------

# Recurring messages: each occurrence is a normal message (messages.schedule_id) queued
# through the intake service with the idempotency key "schedule:<id>:<occurrence>", so
# it can never be queued twice. ``cursor_at`` is the last occurrence handled (sent or
# skipped); a host processes a schedule only while it holds its claim.
schedules = Table(
    "schedules",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("api_key_id", String(16), nullable=False),  # the owner; occurrences are its messages
    Column("name", String(200), nullable=False, default=""),
    Column("kind", String(8), nullable=False),  # rrule / cron
    Column("expr", Text, nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("start_at", UTCDateTime, nullable=False),
    Column("message", Text, nullable=False),  # JSON: to, text/template, variables, sim, priority, ...
    Column("missed", String(8), nullable=False),  # once / skip
    Column("paused", Boolean, nullable=False, default=False),
    Column("cursor_at", UTCDateTime, nullable=False),
    Column("next_run_at", UTCDateTime),  # None: the rule has ended
    Column("last_run_at", UTCDateTime),  # the last occurrence queued
    Column("last_batch_id", String(32)),
    Column("runs", Integer, nullable=False, default=0),
    Column("skipped", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("claim_host", String(100)),
    Column("claim_until", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
Index("ix_schedules_due", schedules.c.paused, schedules.c.next_run_at)
Index("ix_schedules_owner", schedules.c.api_key_id, schedules.c.id)

# Keep-alive per SIM (modem id): when it last proved alive, the claim that keeps two
# hosts from firing the same keep-alive, and the expiry alert already raised.
sim_keepalive = Table(
    "sim_keepalive",
    metadata,
    Column("modem_id", String(64), primary_key=True),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("last_success_at", UTCDateTime),  # a keep-alive that worked, or a sent SMS
    Column("last_attempt_at", UTCDateTime),
    Column("pending_run_id", Integer),  # an SMS keep-alive waiting for its outcome
    Column("claim_host", String(100)),
    Column("claim_until", UTCDateTime),
    Column("expiry_alerted_at", UTCDateTime),
)

keepalive_runs = Table(
    "keepalive_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("modem_id", String(64), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("kind", String(8), nullable=False),  # sms / ussd
    Column("ok", Boolean),  # None while an SMS keep-alive waits to be sent
    Column("detail", Text, nullable=False, default=""),
    Column("message_id", String(32)),
    Column("host", String(100), nullable=False, default=""),
    Column("finished_at", UTCDateTime),
)
Index("ix_keepalive_runs_modem", keepalive_runs.c.modem_id, keepalive_runs.c.at)
# --- contacts, groups and campaigns (issue 21 parts 1-2, migration 0012) ------------

# An address book entry: one row per E.164 number. Opt-out status is not stored
# here: it is read from ``optouts`` whenever a contact is shown (one list, no copy).
contacts = Table(
    "contacts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("number", String(32), nullable=False, unique=True),  # E.164
    Column("name", Text, nullable=False, default=""),
    Column("fields", Text, nullable=False, default="{}"),  # JSON object of strings
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

contact_groups = Table(
    "contact_groups",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
)

contact_group_members = Table(
    "contact_group_members",
    metadata,
    Column("group_id", String(32), ForeignKey("contact_groups.id", ondelete="CASCADE"), primary_key=True),
    Column("contact_id", String(32), ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True),
)
Index("ix_contact_group_members_contact", contact_group_members.c.contact_id)

contact_tags = Table(
    "contact_tags",
    metadata,
    Column("contact_id", String(32), ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True),
    Column("tag", String(64), primary_key=True),
)
Index("ix_contact_tags_tag", contact_tags.c.tag)

# A template sent to a group, a tag or a list of contacts. state: draft -> scheduled
# (start_at in the future) -> running <-> paused -> completed | cancelled.
campaigns = Table(
    "campaigns",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("template", Text, nullable=False),
    Column("target_kind", String(8), nullable=False),  # group / tag / contacts
    Column("target", Text, nullable=False),  # group id, tag, or JSON list of contact ids
    Column("state", String(12), nullable=False),
    Column("api_key_id", String(16), nullable=False),  # the key its messages are sent as
    Column("priority", Integer, nullable=False),
    Column("queue_window", Integer, nullable=False),  # at most this many queued at once
    Column("sim", String(64)),
    Column("start_at", UTCDateTime),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("recipients_total", Integer, nullable=False, default=0),
    Column("last_error", Text, nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
Index("ix_campaigns_state", campaigns.c.state)

# The recipients a campaign was started with (a snapshot: the text is rendered at
# start), each submitted at most once: state pending -> submitted (message_id) |
# opted_out | cancelled. The idempotency key "campaign:<id>:<contact>" makes a
# submission repeated after a crash a replay of the first.
campaign_recipients = Table(
    "campaign_recipients",
    metadata,
    Column("campaign_id", String(32), ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True),
    Column("contact_id", String(32), primary_key=True),
    Column("seq", Integer, nullable=False),
    Column("number", String(32), nullable=False),
    Column("text", Text, nullable=False),
    Column("state", String(12), nullable=False),
    Column("message_id", String(32)),
    Column("updated_at", UTCDateTime, nullable=False),
)
Index("ix_campaign_recipients_next", campaign_recipients.c.campaign_id, campaign_recipients.c.state,
      campaign_recipients.c.seq)
Index("ix_campaign_recipients_number", campaign_recipients.c.number)
# --- reports, retention, erasure and audit (issue 21, parts 3-5) ----------------------

# What the report rollup last counted for this message (JSON: its day, SIM, key,
# campaign and counters). The rollup adds the difference between what a message
# counts now and this mark, and writes the new mark in the same transaction: a
# message seen again counts once, a state change moves its counts. NULL = never
# counted; a message is pruned only once counted in its final state.
messages.append_column(Column("report_mark", Text))

def _report_columns() -> list[Column[Any]]:
    """What a report row counts (report_daily and report_monthly alike)."""
    return [
        Column("sim", String(64), primary_key=True),
        Column("api_key_id", String(16), primary_key=True),
        Column("campaign_id", String(32), primary_key=True),
        Column("messages", BigInteger, nullable=False, default=0),
        Column("messages_delivered", BigInteger, nullable=False, default=0),
        Column("messages_failed", BigInteger, nullable=False, default=0),
        Column("parts_sent", BigInteger, nullable=False, default=0),
        Column("parts_delivered", BigInteger, nullable=False, default=0),
        # Failed parts by class: CMS error classes of gsmgw.pool.retry, a failing status
        # report, validity ended, outcome unknown, anything else.
        Column("failed_permanent", BigInteger, nullable=False, default=0),
        Column("failed_transient", BigInteger, nullable=False, default=0),
        Column("failed_modem", BigInteger, nullable=False, default=0),
        Column("failed_report", BigInteger, nullable=False, default=0),
        Column("failed_expired", BigInteger, nullable=False, default=0),
        Column("failed_unknown", BigInteger, nullable=False, default=0),
        Column("failed_other", BigInteger, nullable=False, default=0),
        Column("replies", BigInteger, nullable=False, default=0),
        Column("optouts", BigInteger, nullable=False, default=0),
        Column("cost_micros", BigInteger, nullable=False, default=0),
        # Time from sent to delivered per delivered message: a histogram, one counter per
        # bucket of gsmgw.store.rollup.LATENCY_BOUNDS_S (ttd_b31: longer than the last),
        # summed in SQL by the report query.
        *(Column(f"ttd_b{i:02d}", BigInteger, nullable=False, default=0) for i in range(32)),
    ]


# Aggregates per (UTC day the message was created, SIM, API key, campaign): what
# reports read, kept after the rows are pruned. '' = none (no SIM yet, no key...).
report_daily = Table(
    "report_daily",
    metadata,
    Column("day", String(10), primary_key=True),  # YYYY-MM-DD (UTC)
    *_report_columns(),
)
# The same per UTC month (YYYY-MM), written in the same transaction: a year by month
# reads 12 rows per group instead of 365.
report_monthly = Table(
    "report_monthly",
    metadata,
    Column("month", String(7), primary_key=True),
    *_report_columns(),
)

# The pruner deletes a message's status reports by message id.
Index("ix_status_reports_message", status_reports.c.message_id)
# A settle's look for reports that overtook it: unmatched, its modem and TP-MR, in the
# window (migration 0016; through the index above it read every unmatched report kept).
Index("ix_status_reports_match", status_reports.c.modem_id, status_reports.c.tp_mr, status_reports.c.received_at)

# Admin actions: who did what to what, when (keys, modems, erasures, reloads, prunes).
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(100), nullable=False),  # "key:<id>", "cli", "daemon"
    Column("action", String(40), nullable=False),  # key.create, modem.patch, number.erase ...
    Column("target", String(200), nullable=False, default=""),
    Column("detail", Text, nullable=False, default="{}"),  # JSON
    Column("host", String(100), nullable=False, default=""),
)
Index("ix_audit_log_at", audit_log.c.at)

# Short row leases for jobs that one host at a time may run (the pruner).
job_leases = Table(
    "job_leases",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("owner", String(100), nullable=False),
    Column("until", UTCDateTime, nullable=False),
)
