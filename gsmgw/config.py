"""TOML configuration → typed, frozen config objects.

Every error names the file, the dotted key and what was expected, e.g.::

    /etc/gsmgw/gsmgw.toml: modem[1].send_timeout_s: expected a number, got 'slow'

The schema *is* the dataclasses below: a key that no field declares is an
error, and every timeout and limit carries its unit in its name.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gsmgw.errors import ConfigError
from gsmgw.urls import parse_entry

DEFAULT_LISTEN = "127.0.0.1:8080"
DEFAULT_STORE_URL = "sqlite:////var/lib/gsmgw/gsmgw.db"


@dataclass(frozen=True, slots=True)
class ApiConfig:
    # "HOST:PORT"; "[::1]:8080" for IPv6; port 0 picks a free port.
    listen: str = DEFAULT_LISTEN
    # Requests with a larger body are refused with 413 before they are parsed.
    max_body_bytes: int = 256 * 1024
    # Region used to read numbers written without "+country" (ISO 3166 alpha-2).
    default_region: str = "US"
    # Refuse new messages with 429 once this many are queued.
    max_queue_depth: int = 1_000_000
    tls_cert_file: str = ""
    tls_key_file: str = ""
    # A connection must send a complete request (its headers) within this long after
    # it opens or after the previous reply, or it is closed (seconds).
    header_timeout_s: float = 15.0
    # A request body must arrive within this long once its headers have (seconds); 408 otherwise.
    body_timeout_s: float = 30.0
    # Connections open at once; one more is answered 503 and closed.
    max_connections: int = 512


@dataclass(frozen=True, slots=True)
class StoreConfig:
    # SQLAlchemy URL. SQLite (WAL) by default, an absolute path (four slashes: the
    # folder is the unit's StateDirectory); postgresql+psycopg://... for a shared store.
    url: str = DEFAULT_STORE_URL
    # How long a host's claim on a message lasts without renewal.
    lease_s: float = 120.0
    # Run alembic migrations at start (turn off only if an operator runs them by hand).
    migrate_on_start: bool = True
    # This gateway's name in a shared store (claims, leases, modem ownership).
    # Empty = the machine's hostname; give each process its own when several run
    # on one machine against one PostgreSQL queue.
    host_id: str = ""


@dataclass(frozen=True, slots=True)
class ModemConfig:
    """One ``[[modem]]``: what the pool needs (group, limits...) and what the driver
    needs (port, timeouts...). The driver gets this object as is, so a setting has
    one name and one default everywhere."""

    id: str
    # Either a port (device path, pty, or socket://host:port) or a match on identity.
    port: str = ""
    imei: str = ""
    iccid: str = ""
    baudrate: int = 115200
    pin: str = ""
    enabled: bool = True
    # Name of the SIM group this modem belongs to (used by routing rules).
    group: str = "default"
    # No sending in this local-time window, e.g. "22:00-07:00"; empty = none.
    quiet_hours: str = ""
    # Per-SIM limits; 0 means unlimited.
    max_per_minute: int = 0
    max_per_hour: int = 0
    max_per_day: int = 0
    # Device timeouts (seconds).
    command_timeout_s: float = 5.0
    prompt_timeout_s: float = 5.0
    # From Ctrl-Z until the +CMGS final result.
    send_timeout_s: float = 60.0
    registration_timeout_s: float = 90.0
    sim_ready_timeout_s: float = 20.0
    # AT+CMGL on a full SIM at 9600 baud takes seconds.
    list_timeout_s: float = 20.0
    health_interval_s: float = 30.0
    # This many timeouts in a row declare the port dead (it is reopened).
    max_consecutive_timeouts: int = 3
    # Reconnect/recovery: capped exponential backoff between attempts.
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    # After AT+CFUN=1,1 (module reboot), before reopening the port.
    reboot_wait_s: float = 10.0
    # Preferred SMS storage ("SM", "ME", "MT").
    sms_storage: str = "SM"
    # Route SMS and status reports to the host (+CMT/+CDS) and acknowledge each with
    # AT+CNMA, instead of storing them (+CMTI/+CDSI).
    ack_cmt: bool = False
    # Use an explicit SMSC number instead of the SIM's (+CSCA); empty = SIM's.
    smsc: str = ""
    # --- SIM care (issue 20; README "SIM care"): pacing, calendar caps, warm-up, cost ---
    # A random pause between sends of messages that are not exempt (seconds; 0 = off):
    # "uniform" draws evenly from [pace_min_s, pace_max_s], "jitter" clusters around the middle.
    pace_min_s: float = 0.0
    pace_max_s: float = 0.0
    pace_mode: Literal["uniform", "jitter"] = "uniform"
    # Calendar caps in [sim_care] timezone, counted in parts (month) or distinct numbers; 0 = none.
    max_per_month: int = 0
    max_recipients_per_day: int = 0
    max_recipients_per_month: int = 0
    # Warm-up of a new SIM: warmup_start_per_day parts on its first day, rising linearly to
    # max_per_day over warmup_days days (counted from the first day the store saw it send).
    warmup_start_per_day: int = 0
    warmup_days: int = 0
    # What one part sent from this SIM costs, in millionths of [cost] currency; 0 = not set.
    cost_per_part_micros: int = 0

    @property
    def name(self) -> str:
        """How logs and events name this modem: its id, or its port without one."""
        return self.id or self.port


@dataclass(frozen=True, slots=True)
class RouteRule:
    """Numbers matching ``prefix`` (E.164, e.g. "+44") or ``regex`` go to SIMs of ``group``."""

    group: str
    prefix: str = ""
    regex: str = ""
    # After this long unsent, any SIM may take the message; 0 = only this group, ever.
    fallback_after_s: float = 60.0


@dataclass(frozen=True, slots=True)
class DispatchConfig:
    # Fallback poll for work when no wake-up arrives (seconds).
    poll_interval_s: float = 1.0
    # Texts needing more parts than this are refused at intake.
    max_parts: int = 10
    # Replace typographic characters with GSM equivalents instead of UCS-2.
    smart_encoding: bool = False
    # Default validity of a message from acceptance (seconds); it expires after that.
    default_ttl_s: float = 24 * 3600.0
    # Ask the network for status reports unless the request says otherwise.
    delivery_reports: bool = True
    # Transient failures are retried this many times in all, with backoff.
    max_attempts: int = 5
    retry_backoff_initial_s: float = 5.0
    retry_backoff_max_s: float = 300.0
    # What to do when a send's outcome is unknown (PDU written, no final result):
    # "never" marks the part unknown and stops; "resend" queues it again (may duplicate).
    unknown_policy: Literal["never", "resend"] = "never"
    # How long a status report may follow its send (seconds) and still match.
    status_report_window_s: float = 3 * 24 * 3600.0
    # Stickiness: a number that got a message from a SIM within this window gets the
    # next one from the same SIM (so replies reach the same number); 0 = off.
    sticky_s: float = 7 * 24 * 3600.0
    # ...unless that SIM has not taken it within this long (it may be offline).
    sticky_fallback_s: float = 60.0
    # Routing rules, first match wins.
    route: tuple[RouteRule, ...] = ()


@dataclass(frozen=True, slots=True)
class WebhookSubscription:
    url: str
    events: tuple[str, ...] = ("*",)


@dataclass(frozen=True, slots=True)
class WebhooksConfig:
    # Hosts that per-message callback_url values may point at; empty = none allowed.
    allowed_hosts: tuple[str, ...] = ()
    # HMAC-SHA256 key for the X-Gsmgw-Signature header; empty = unsigned.
    signing_secret: str = ""
    timeout_s: float = 10.0
    # Attempts per event and receiver before it is marked failed; 0 = retry forever.
    max_attempts: int = 20
    subscription: tuple[WebhookSubscription, ...] = ()
    # Capped exponential backoff between attempts to one receiver (seconds).
    retry_initial_s: float = 5.0
    retry_max_s: float = 600.0
    # How often the outbox is read for new events (seconds).
    poll_interval_s: float = 1.0


# STOP/START keywords in several languages; matched on the whole message, case-
# and accent-insensitive, punctuation and spaces around ignored.
DEFAULT_STOP_KEYWORDS = (
    "stop", "stopall", "stop all", "unsubscribe", "cancel", "end", "quit", "optout", "opt out",
    "arret", "arreter", "desabonner", "desinscrire",  # fr
    "stopp", "abmelden", "abbestellen",  # de
    "baja", "alto", "parar", "cancelar",  # es / pt
    "basta", "disiscrivi", "cancella",  # it
    "afmelden", "uitschrijven",  # nl
    "sair", "pare",  # pt
)
DEFAULT_START_KEYWORDS = (
    "start", "unstop", "resume", "subscribe", "optin", "opt in",
    "demarrer", "reprendre", "anmelden", "alta", "iniciar", "aanmelden", "iscrivi",
)


@dataclass(frozen=True, slots=True)
class InboundConfig:
    # AT+CMGL sweep of each SIM's storage (the safety net for a lost +CMTI), in
    # seconds; a sweep also runs when a modem becomes ready and when it reports
    # full storage.
    sweep_interval_s: float = 60.0
    # A multipart SMS whose parts have not all come after this long is stored
    # with what arrived, marked incomplete.
    reassembly_timeout_s: float = 3600.0
    # How long the dedup keys of stored parts are kept (seconds).
    dedup_retention_s: float = 30 * 86400.0
    # An inbound message is linked to the last outbound message to its sender
    # within this window (seconds).
    reply_window_s: float = 30 * 86400.0
    stop_keywords: tuple[str, ...] = DEFAULT_STOP_KEYWORDS
    start_keywords: tuple[str, ...] = DEFAULT_START_KEYWORDS
    # Confirmation sent back (transactional, same SIM); empty = none.
    stop_reply: str = ""
    start_reply: str = ""
    # Periodic balance check: USSD code (e.g. "*100#"); empty = off.
    balance_ussd: str = ""
    balance_interval_s: float = 6 * 3600.0
    # First group of this regex (or the whole match) is the balance; "," is a decimal point.
    balance_regex: str = r"(-?\d+(?:[.,]\d+)?)"
    # A balance below this emits a balance:low event (0 = never).
    balance_low: float = 0.0
    ussd_timeout_s: float = 20.0


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: Literal["trace", "debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"


@dataclass(frozen=True, slots=True)
class DiscoveryConfig:
    # Where to look for a [[modem]] given by imei/iccid instead of port. Prefer
    # stable names; the ttyUSB numbers change on every replug.
    port_globs: tuple[str, ...] = ("/dev/gsmgw/*", "/dev/serial/by-id/*", "/dev/ttyUSB*", "/dev/ttyACM*")
    # Rescan this often where there is no udev to announce hot-plug events.
    rescan_interval_s: float = 30.0
    # A matched modem whose port stays gone this long is looked for elsewhere.
    rediscover_after_s: float = 10.0
    # Per-command timeout while identifying an unknown port.
    identify_timeout_s: float = 2.0


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    """The admin console at /ui/ on the API port (sign-in with an API key)."""

    enabled: bool = True
    # A session ends after this long without a request, and after session_max_s in any case.
    session_idle_s: float = 1800.0
    session_max_s: float = 12 * 3600.0


@dataclass(frozen=True, slots=True)
class SmppRoute:
    """Inbound SMS matching this rule go to the receiver binds of account ``system_id``.

    Every condition given must hold; a rule with none matches every inbound SMS.
    Rules are tried in order, the first match wins.
    """

    system_id: str
    # The receiving SIM (modem id); empty = any.
    sim: str = ""
    # The sender's number starts with this (E.164, e.g. "+44"); empty = any.
    sender_prefix: str = ""
    # This regular expression is found in the text; empty = any.
    text_regex: str = ""
    # deliver_sm destination_addr; empty = the SIM's own number, else its id.
    destination_addr: str = ""


@dataclass(frozen=True, slots=True)
class SmppConfig:
    # "HOST:PORT" of the SMPP 3.4 server; empty = off. Accounts: gsmgw smpp accounts create.
    listen: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""
    # What bind_*_resp names this SMSC.
    system_id: str = "gsmgw"
    # Requests a session may have unanswered (and deliver_sm we leave unacknowledged);
    # more get ESME_RTHROTTLED.
    window: int = 10
    # Open connections on this host, bound or not.
    max_connections: int = 200
    # A connection that has not bound after this long is closed.
    bind_timeout_s: float = 30.0
    # A session that sends nothing (not even enquire_link or a response) this long is
    # unbound and closed; 0 = never.
    idle_timeout_s: float = 300.0
    # The server's own enquire_link on a quiet session (finds dead receivers); 0 = never.
    enquire_link_interval_s: float = 30.0
    # How long a deliver_sm / enquire_link / unbind waits for its response.
    response_timeout_s: float = 10.0
    max_pdu_bytes: int = 70_000
    # data_coding 0 ("SMSC default alphabet"): GSM 03.38 unpacked, Latin-1 or ASCII.
    default_alphabet: Literal["gsm7", "latin1", "ascii"] = "gsm7"
    # Long messages an ESME splits itself (UDH or sar_*): "reassemble" the parts into
    # one message (held in the store until the last comes), or send each "separate"ly.
    concat_policy: Literal["reassemble", "separate"] = "reassemble"
    # Parts still missing after this long: what came is sent as one message.
    reassembly_timeout_s: float = 600.0
    # How often the outbox is read for receipts and inbound SMS (seconds).
    poll_interval_s: float = 0.1
    # Backoff between deliver_sm attempts that failed (no or a negative response).
    retry_initial_s: float = 5.0
    retry_max_s: float = 300.0
    # Inbound SMS routing to accounts, first match wins; none = inbound SMS stay off SMPP.
    route: tuple[SmppRoute, ...] = ()


@dataclass(frozen=True, slots=True)
class HealthConfig:
    # /readyz and /api/v1/status say "fail" once no modem has been ready for this
    # long (seconds; counted from the start too), "degraded" before that.
    modem_grace_s: float = 120.0
    # How often the store file, the store lock and the modems are checked (seconds).
    check_interval_s: float = 5.0


# --- SIM keep-alive and recurring schedules (issue 20 parts 2-3) ------------------------


@dataclass(frozen=True, slots=True)
class KeepAliveSim:
    """``[[keepalive.sim]]``: one modem's own keep-alive; an unset key takes [keepalive]'s."""

    modem: str  # the [[modem]] id
    enabled: bool | None = None
    every_days: float | None = None
    action: Literal["sms", "ussd"] | None = None
    sms_to: str | None = None
    sms_text: str | None = None
    ussd: str | None = None
    expiry_days: float | None = None


@dataclass(frozen=True, slots=True)
class KeepAliveConfig:
    """Keeps prepaid SIMs active: a SIM that has sent nothing (no SMS sent, no keep-alive
    that worked) for ``every_days`` runs its keep-alive, a USSD code (a balance check
    counts) or an SMS to ``sms_to``."""

    # For every modem; [[keepalive.sim]] enabled = true/false per modem wins.
    enabled: bool = False
    every_days: float = 30.0
    action: Literal["sms", "ussd"] = "ussd"
    sms_to: str = ""  # E.164; required for action = "sms"
    sms_text: str = "keep-alive"
    ussd: str = "*100#"
    # The operator's expiry period: sim:expiry-risk when a SIM's last success is older; 0 = off.
    expiry_days: float = 0.0
    # How often each SIM is looked at (seconds).
    check_interval_s: float = 3600.0
    # After a keep-alive that failed, the next attempt waits this long (seconds).
    retry_after_s: float = 6 * 3600.0
    # A keep-alive SMS that is not sent within this long expires and counts as failed (seconds).
    sms_ttl_s: float = 3600.0
    sim: tuple[KeepAliveSim, ...] = ()


@dataclass(frozen=True, slots=True)
class SchedulesConfig:
    """Recurring messages (POST /api/v1/schedules, gsmgw schedules)."""

    enabled: bool = True
    # An occurrence found later than this (seconds) was missed (downtime): the schedule's
    # missed policy decides ("once": the latest missed is sent; "skip": none).
    grace_s: float = 300.0
    # The scheduler sleeps at most this long between looks (seconds); a new or resumed
    # schedule on this host wakes it at once, another host's within this time.
    poll_interval_s: float = 30.0
    # How long a host holds a schedule while it queues an occurrence (seconds).
    claim_s: float = 60.0
    # Schedules one API key may have.
    max_per_key: int = 1000


@dataclass(frozen=True, slots=True)
class ClientConfig:
    # For `gsmgw send` / `gsmgw status` run with this config (GSMGW_CONFIG): the
    # gateway's URL (empty = from [api] listen) and a file holding an API key.
    url: str = ""
    api_key_file: str = ""


# --- e-mail door and inbound rules (issue 19) ------------------------------------


@dataclass(frozen=True, slots=True)
class SmtpOutConfig:
    """The mail server SMS are forwarded through (``[email.smtp]``)."""

    # Empty = no forwarding.
    host: str = ""
    port: int = 25
    # "auto": STARTTLS when the server offers it; "starttls": required; "tls": implicit
    # TLS from the first byte (port 465); "none": never (a relay on loopback).
    security: Literal["auto", "starttls", "tls", "none"] = "auto"
    username: str = ""
    # A file holding the SMTP password (its first line).
    password_file: str = ""
    # The From: address of forwarded mail.
    from_address: str = "gsmgw@localhost"
    # CA bundle to verify the server's certificate with; empty = the system's.
    ca_file: str = ""
    timeout_s: float = 30.0


@dataclass(frozen=True, slots=True)
class EmailForward:
    """``[[email.forward]]``: where inbound SMS (and, if asked, failures) are mailed.

    Every condition given must hold; one with none forwards every inbound SMS."""

    to: tuple[str, ...]
    # The receiving SIM (modem id); empty = any.
    sim: str = ""
    # A glob on the sender ("+4477*", "BANK*"); empty = any.
    sender_pattern: str = ""
    # Also mail sms:failed (the recipient in place of the sender; "sim" = the SIM that sent).
    include_failures: bool = False


@dataclass(frozen=True, slots=True)
class EmailListenerConfig:
    """``[email.listener]``: an SMTP server; a mail to <number>@<domain> becomes an SMS."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 2525
    # The domain recipients must be at ("sms.example.com"); required when enabled.
    domain: str = ""
    # Envelope senders that may send without AUTH: "alerts@example.com" or "*@example.com".
    allowed_senders: tuple[str, ...] = ()
    # The API key (a file holding it) mail from allowed_senders is sent as.
    api_key_file: str = ""
    # Largest mail accepted (bytes, SIZE); more is refused with 552.
    max_size: int = 64 * 1024
    # "prepend": the subject, a newline, then the body; "ignore": the body alone.
    subject: Literal["ignore", "prepend"] = "ignore"
    # STARTTLS (and AUTH over it) with this certificate; empty = no TLS.
    tls_cert_file: str = ""
    tls_key_file: str = ""
    # AUTH without TLS. Always allowed on a loopback listener; elsewhere only if true.
    allow_plain_auth: bool = False


@dataclass(frozen=True, slots=True)
class EmailConfig:
    smtp: SmtpOutConfig = field(default_factory=SmtpOutConfig)
    forward: tuple[EmailForward, ...] = ()
    listener: EmailListenerConfig = field(default_factory=EmailListenerConfig)
    # How often the outbox is read for SMS to forward, and the backoff while the mail
    # server is down (seconds).
    poll_interval_s: float = 1.0
    retry_initial_s: float = 5.0
    retry_max_s: float = 600.0


@dataclass(frozen=True, slots=True)
class RuleConfig:
    """One ``[[rules]]``: conditions (all given must hold) and actions (in this order:
    tag, email, webhook, mqtt_topic, reply, command). STOP/START never reach rules."""

    name: str = ""
    # The sender: E.164 ("+447700900123", any rendering of it matches) or a glob ("+4477*").
    sender: str = ""
    # The receiving SIM (modem id).
    sim: str = ""
    # The text's first word, case- and accent-insensitive ("INFO", "Info!" and "info ..." match "info").
    keyword: str = ""
    # Found anywhere in the text (Python re.search); named groups become template variables.
    regex: str = ""
    # Actions.
    tag: tuple[str, ...] = ()
    email: tuple[str, ...] = ()
    webhook: str = ""
    mqtt_topic: str = ""
    # Auto-reply template: {sender} {text} {sim} {id} {received_at} {keyword} {rest} and regex groups.
    reply: str = ""
    # At most reply_limit auto-replies of this rule to one sender per reply_window_s.
    reply_limit: int = 1
    reply_window_s: float = 3600.0
    # argv of a program (absolute path, no shell); the message as JSON on its stdin.
    command: tuple[str, ...] = ()
    command_timeout_s: float = 10.0
    # Bytes of its stdout/stderr kept (the rest is read and dropped).
    command_output_max: int = 4096
    # No rule after this one is tried when this one matches.
    stop: bool = False
# --- contacts and campaigns (issue 21) ---------------------------------------------


@dataclass(frozen=True, slots=True)
class CampaignsConfig:
    """Campaigns: how fast the runner feeds the queue, and CSV imports."""

    # Run campaigns on this host (on a shared PostgreSQL store, several hosts may: each
    # recipient is still submitted once, by its idempotency key).
    enabled: bool = True
    # At most this many of a campaign's messages queued at once (unless the campaign
    # says otherwise): a pause then holds back all but these, and transactional
    # traffic is never behind a wall of campaign messages.
    window: int = 50
    # How often running campaigns are topped up (seconds); a start or resume wakes the runner.
    poll_interval_s: float = 0.25
    # Rows per transaction of a CSV import: small, so the dispatcher's store writes
    # (which share SQLite's one writer) wait for one batch at most.
    import_batch_rows: int = 500
    # The largest CSV file POST /api/v1/contacts/import takes (bytes; api.max_body_bytes
    # is for JSON bodies).
    import_max_bytes: int = 64 * 1024 * 1024


# --- SIM care (issue 20): pacing exemptions, the calendar, recipient quiet hours, cost ---


@dataclass(frozen=True, slots=True)
class SimCareConfig:
    # Day and month boundaries of the calendar caps (and the warm-up day) in this zone.
    timezone: str = "UTC"
    # Messages with at least this priority ("high" = 5, "otp" = 9) skip the pacing delay.
    exempt_priority: int = 5
    # Messages marked transactional skip the pacing delay too.
    exempt_transactional: bool = True


@dataclass(frozen=True, slots=True)
class QuietHoursConfig:
    # Non-transactional messages are sent only in this window of the recipient's local
    # time ("08:00-21:00"; the strictest of a country's zones); empty = any time.
    recipient_window: str = ""


@dataclass(frozen=True, slots=True)
class CostRate:
    """A price per part for numbers starting with ``prefix`` (the longest prefix wins;
    with ``modem`` set, only for that SIM, and it beats a rate for any SIM)."""

    prefix: str
    part_micros: int
    modem: str = ""


@dataclass(frozen=True, slots=True)
class CostConfig:
    currency: str = ""
    rate: tuple[CostRate, ...] = ()


# --- [mqtt] (issue 19: MQTT and Home Assistant) ---------------------------------


@dataclass(frozen=True, slots=True)
class MqttConfig:
    """The MQTT door (``gsmgw.mqtt``): retained state, outbox events, commands and
    Home Assistant discovery. Off while ``url`` is empty."""

    # mqtt://HOST[:1883] or mqtts://HOST[:8883] (TLS); empty = off.
    url: str = ""
    username: str = ""
    password: str = ""
    # A file holding the password (first line); wins over password.
    password_file: str = ""
    # CA certificates for mqtts:// (PEM); empty = the system's.
    tls_ca_file: str = ""
    # Empty = "gsmgw-<host id>".
    client_id: str = ""
    # Every topic of this gateway is under it: state, events, commands, availability.
    base_topic: str = "gsmgw"
    keepalive_s: int = 60
    # Accept send/cancel/ussd commands under base_topic (off by default).
    commands: bool = False
    # A file holding the API key commands run as (its scopes and limits apply).
    api_key_file: str = ""
    # Home Assistant MQTT discovery.
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    # Recipients of Home Assistant's notify entity (admin-chosen; none = no notify entity).
    notify_to: tuple[str, ...] = ()
    # How often the retained state is refreshed (seconds).
    state_interval_s: float = 30.0
    # Reconnect backoff after the broker is lost.
    reconnect_initial_s: float = 1.0
    reconnect_max_s: float = 60.0
    # How long one publish waits for the broker's PUBACK.
    publish_timeout_s: float = 10.0


_MQTT_BASE_RE = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*")


def _check_mqtt(c: MqttConfig, source: str) -> None:
    if c.url and not re.fullmatch(r"mqtts?://[^/:\s]+(:[0-9]{1,5})?/?", c.url):
        raise ConfigError(f"{source}: mqtt.url: expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT], got {c.url!r}")
    for key in ("base_topic", "discovery_prefix"):
        if not _MQTT_BASE_RE.fullmatch(getattr(c, key)):
            raise ConfigError(f"{source}: mqtt.{key}: expected topic levels of A-Z a-z 0-9 _ . - "
                              f"(no wildcards, no leading or trailing /), got {getattr(c, key)!r}")
    if c.client_id and (len(c.client_id) > 64 or not c.client_id.isascii() or not c.client_id.isprintable()):
        raise ConfigError(f"{source}: mqtt.client_id: expected 1-64 printable ASCII characters")
    if c.tls_ca_file and not c.url.startswith("mqtts://"):
        raise ConfigError(f"{source}: mqtt.tls_ca_file: only used with an mqtts:// url")
    if c.commands and c.url and not c.api_key_file:
        raise ConfigError(f"{source}: mqtt.api_key_file: commands = true needs the API key they run as")
    if not 5 <= c.keepalive_s <= 3600:
        raise ConfigError(f"{source}: mqtt.keepalive_s: expected 5..3600, got {c.keepalive_s}")
    for key in ("state_interval_s", "reconnect_initial_s", "reconnect_max_s", "publish_timeout_s"):
        if not getattr(c, key) > 0:
            raise ConfigError(f"{source}: mqtt.{key}: must be positive")
    for i, n in enumerate(c.notify_to):
        if not re.fullmatch(r"\+[0-9]{6,15}", n):
            raise ConfigError(f"{source}: mqtt.notify_to[{i}]: expected an E.164 number (+ and digits), got {n!r}")


# --- reports and retention (issue 21) ---------------------------------------------


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    # Days to keep each kind of row; 0 = keep forever. Messages are kept while not
    # final; events while an outbox consumer has not read them; deliveries while pending.
    messages_days: int = 0
    inbound_days: int = 0
    events_days: int = 0
    webhook_deliveries_days: int = 0
    # The automatic prune, once a day at this UTC time (HH:MM; "" = only `gsmgw store prune`).
    daily_at: str = "03:30"
    # Rows deleted per transaction, the least pause between two (seconds), and the
    # largest share of the store's time the pruner may take (rest = busy time x (1/duty - 1)).
    batch_rows: int = 200
    # Time budget of one batch (ms): each next batch is sized from the last one's rows
    # per ms so that it takes about this long (10..10,000 rows); 0 = always batch_rows.
    batch_ms: float = 10.0
    pause_s: float = 0.05
    duty_cycle: float = 0.2
    # Outbox consumers whose cursor does not hold events back (a door switched off for good).
    ignore_consumers: tuple[str, ...] = ()
    # How often the report rollup reads new events from the outbox (seconds).
    rollup_interval_s: float = 5.0


@dataclass(frozen=True, slots=True)
class Config:
    api: ApiConfig = field(default_factory=ApiConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    dispatch: DispatchConfig = field(default_factory=DispatchConfig)
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)
    inbound: InboundConfig = field(default_factory=InboundConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    discovery: DiscoveryConfig = field(default_factory=DiscoveryConfig)
    console: ConsoleConfig = field(default_factory=ConsoleConfig)
    smpp: SmppConfig = field(default_factory=SmppConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    client: ClientConfig = field(default_factory=ClientConfig)
    sim_care: SimCareConfig = field(default_factory=SimCareConfig)
    quiet_hours: QuietHoursConfig = field(default_factory=QuietHoursConfig)
    cost: CostConfig = field(default_factory=CostConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    keepalive: KeepAliveConfig = field(default_factory=KeepAliveConfig)
    schedules: SchedulesConfig = field(default_factory=SchedulesConfig)
    campaigns: CampaignsConfig = field(default_factory=CampaignsConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    modem: tuple[ModemConfig, ...] = ()
    # E-mail in and out, inbound rules (issue 19).
    email: EmailConfig = field(default_factory=EmailConfig)
    rules: tuple[RuleConfig, ...] = ()
    # Where the file came from (for messages); not a TOML key.
    source: str = field(default="<defaults>", metadata={"internal": True})


# --- loading -----------------------------------------------------------------


def load(path: str | Path) -> Config:
    """Read and validate a TOML file."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from exc
    return from_dict(data, source=str(p))


def from_dict(data: dict[str, Any], *, source: str = "<dict>") -> Config:
    cfg = _build(Config, data, source, "")
    cfg = dataclasses.replace(cfg, source=source)
    _check(cfg, source)
    return cfg


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is str:
        return "a string"
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is tuple:
        return "an array"
    if dataclasses.is_dataclass(tp):
        return "a table"
    return str(tp)


def _convert(tp: Any, value: Any, source: str, key: str) -> Any:
    origin = typing.get_origin(tp)
    bad = ConfigError(f"{source}: {key}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise bad
        return value
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(args[0], value, source, key)
    if origin is tuple:
        if not isinstance(value, list):
            raise bad
        (item_tp, _ellipsis) = typing.get_args(tp)
        return tuple(_convert(item_tp, v, source, f"{key}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise bad
        return _build(tp, value, source, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        if value < 0:
            raise ConfigError(f"{source}: {key}: must not be negative, got {value}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad
        if value < 0:
            raise ConfigError(f"{source}: {key}: must not be negative, got {value}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad
        return value
    raise bad  # pragma: no cover - schema uses only the types above


def _build(cls: Any, data: dict[str, Any], source: str, prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        if name not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{source}: {key}: unknown key (known keys here: {known})")
        kwargs[name] = _convert(hints[name], value, source, key)
    for name, f in fields.items():
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            key = f"{prefix}.{name}" if prefix else name
            raise ConfigError(f"{source}: {key}: required key is missing")
    return cls(**kwargs)


_QUIET_RE = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]")

_LISTEN_RE = re.compile(r"^(?:\[(?P<v6>[0-9a-fA-F:.]+)\]|(?P<host>[^:\[\]]+)):(?P<port>\d{1,5})$")


def parse_listen(listen: str) -> tuple[str, int]:
    m = _LISTEN_RE.match(listen)
    if not m or not 0 <= int(m["port"]) < 65536:
        raise ValueError(f"expected HOST:PORT, got {listen!r}")
    return (m["v6"] or m["host"], int(m["port"]))


_URL_SCHEME_RE = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<rest>.*)$", re.DOTALL)


def store_url_problem(url: str, *, allow_relative: bool = False) -> str | None:
    """What is wrong with a ``[store] url`` (one sentence with the fix), or None.

    Plain text checks only (config must not import SQLAlchemy): a plain path, an
    unknown scheme and a relative SQLite path are the mistakes people make. A
    relative SQLite path is refused in a config file because it depends on the
    folder the process starts in: ``gsmgw doctor`` and the service would look at
    different files.
    """
    if not url.strip():
        return "is empty: give a SQLAlchemy URL such as sqlite:////var/lib/gsmgw/gsmgw.db"
    m = _URL_SCHEME_RE.match(url)
    if m is None:
        if re.match(r"^(sqlite|postgres)|^[A-Za-z][A-Za-z0-9+.-]*:", url):
            return (f"{url!r} is not a well-formed URL (it needs SCHEME://): e.g. sqlite:////var/lib/gsmgw/gsmgw.db "
                    "or postgresql+psycopg://USER@HOST/DB")
        if url.startswith(("/", ".", "~")) or url.endswith((".db", ".sqlite", ".sqlite3")):
            path = url if url.startswith("/") or allow_relative else "/ABSOLUTE/PATH/" + url.rsplit("/", 1)[-1]
            return f"{url!r} is a file path, not a URL: write sqlite:///{path} (four slashes for an absolute path)"
        return (f"{url!r} is not a URL: write sqlite:////var/lib/gsmgw/gsmgw.db or "
                "postgresql+psycopg://USER@HOST/DB")
    backend = m["scheme"].split("+", 1)[0].lower()
    if backend in ("postgres",):
        return f"{url!r}: write postgresql+psycopg:// (SQLAlchemy does not know postgres://)"
    if backend not in ("sqlite", "postgresql"):
        return f"{url!r}: unsupported database {m['scheme']!r}: use sqlite:/// or postgresql+psycopg://"
    if backend == "sqlite":
        rest = m["rest"]
        if not rest.startswith("/") or rest in ("/", "/:memory:"):
            return f"{url!r} has no database file: write sqlite:////var/lib/gsmgw/gsmgw.db"
        path = rest[1:].split("?", 1)[0]
        if not path.startswith("/") and not allow_relative:
            return (f"{url!r} is relative to the folder gsmgw starts in (the service and `gsmgw doctor` "
                    f"would use different files): write an absolute path, sqlite:////FOLDER/{path.rsplit('/', 1)[-1]}")
    return None


def _check(cfg: Config, source: str) -> None:
    try:
        parse_listen(cfg.api.listen)
    except ValueError as exc:
        raise ConfigError(f"{source}: api.listen: {exc}") from None
    for key in ("header_timeout_s", "body_timeout_s", "max_connections"):
        if not getattr(cfg.api, key) > 0:
            raise ConfigError(f"{source}: api.{key}: must be positive")
    if (problem := store_url_problem(cfg.store.url)) is not None:
        raise ConfigError(f"{source}: store.url: {problem}")
    if cfg.client.url and not cfg.client.url.startswith(("http://", "https://")):
        raise ConfigError(f"{source}: client.url: expected an http(s) URL, got {cfg.client.url!r}")
    if cfg.health.check_interval_s <= 0:
        raise ConfigError(f"{source}: health.check_interval_s: must be positive")
    if bool(cfg.api.tls_cert_file) != bool(cfg.api.tls_key_file):
        raise ConfigError(f"{source}: api.tls_cert_file / api.tls_key_file: give both or neither")
    if not (len(cfg.api.default_region) == 2 and cfg.api.default_region.isalpha()):
        raise ConfigError(
            f"{source}: api.default_region: expected an ISO 3166 two-letter code, got {cfg.api.default_region!r}"
        )
    _check_retention(cfg.retention, source)
    if cfg.dispatch.max_parts < 1 or cfg.dispatch.max_parts > 255:
        raise ConfigError(f"{source}: dispatch.max_parts: expected 1..255, got {cfg.dispatch.max_parts}")
    seen: set[str] = set()
    for i, m in enumerate(cfg.modem):
        key = f"modem[{i}]"
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", m.id):
            raise ConfigError(f"{source}: {key}.id: expected 1-64 of A-Z a-z 0-9 _ . -, got {m.id!r}")
        if m.id in seen:
            raise ConfigError(f"{source}: {key}.id: duplicate modem id {m.id!r}")
        seen.add(m.id)
        if not (m.port or m.imei or m.iccid):
            raise ConfigError(f"{source}: {key}: give port, imei or iccid")
        if m.pin and not re.fullmatch(r"\d{4,8}", m.pin):
            raise ConfigError(f"{source}: {key}.pin: expected 4 to 8 digits")
        if m.baudrate == 0:
            raise ConfigError(f"{source}: {key}.baudrate: must be positive")
        if m.quiet_hours and not _QUIET_RE.fullmatch(m.quiet_hours):
            raise ConfigError(f"{source}: {key}.quiet_hours: expected \"HH:MM-HH:MM\", got {m.quiet_hours!r}")
    for i, r in enumerate(cfg.dispatch.route):
        key = f"dispatch.route[{i}]"
        if bool(r.prefix) == bool(r.regex):
            raise ConfigError(f"{source}: {key}: give exactly one of prefix or regex")
        if r.prefix and not re.fullmatch(r"\+[0-9]{1,15}", r.prefix):
            raise ConfigError(f"{source}: {key}.prefix: expected \"+\" and digits, got {r.prefix!r}")
        if r.regex:
            try:
                re.compile(r.regex)
            except re.error as exc:
                raise ConfigError(f"{source}: {key}.regex: not a regular expression: {exc}") from None
        if r.group not in {m.group for m in cfg.modem} and cfg.modem:
            raise ConfigError(f"{source}: {key}.group: no [[modem]] has group {r.group!r}")
    for i, entry in enumerate(cfg.webhooks.allowed_hosts):
        if parse_entry(entry) is None:
            raise ConfigError(f"{source}: webhooks.allowed_hosts[{i}]: expected HOST or HOST:PORT "
                              f"([IPv6]:PORT), got {entry!r}")
    for i, sub in enumerate(cfg.webhooks.subscription):
        if not sub.url.startswith(("http://", "https://")):
            raise ConfigError(f"{source}: webhooks.subscription[{i}].url: expected an http(s) URL")
    c = cfg.console
    if not 0 < c.session_idle_s <= c.session_max_s:
        raise ConfigError(f"{source}: console.session_idle_s: expected more than 0 and at most "
                          f"console.session_max_s ({c.session_max_s:g}), got {c.session_idle_s:g}")
    _check_smpp(cfg.smpp, source)
    _check_email(cfg.email, source)
    _check_rules(cfg.rules, source)
    _check_sim_care(cfg, source)
    _check_mqtt(cfg.mqtt, source)
    _check_keepalive(cfg, source)
    for key, lo, hi in (("window", 1, 1000), ("import_batch_rows", 1, 10_000),
                        ("import_max_bytes", 1024, 1 << 31)):
        if not lo <= getattr(cfg.campaigns, key) <= hi:
            raise ConfigError(f"{source}: campaigns.{key}: must be from {lo} to {hi}")
    if not cfg.campaigns.poll_interval_s > 0:
        raise ConfigError(f"{source}: campaigns.poll_interval_s: must be positive")
    try:
        re.compile(cfg.inbound.balance_regex)
    except re.error as exc:
        raise ConfigError(f"{source}: inbound.balance_regex: not a regular expression: {exc}") from None


def _check_sim_care(cfg: Config, source: str) -> None:
    """[sim_care], [quiet_hours], [cost] and the SIM care keys of each [[modem]]."""
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(cfg.sim_care.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{source}: sim_care.timezone: unknown time zone {cfg.sim_care.timezone!r} "
                          "(an IANA name such as \"Europe/Berlin\")") from None
    w = cfg.quiet_hours.recipient_window
    if w and not _QUIET_RE.fullmatch(w):
        raise ConfigError(f"{source}: quiet_hours.recipient_window: expected \"HH:MM-HH:MM\", got {w!r}")
    if w and w[:5] == w[6:]:
        raise ConfigError(f"{source}: quiet_hours.recipient_window: the window is empty ({w!r})")
    ids = {m.id for m in cfg.modem}
    for i, r in enumerate(cfg.cost.rate):
        key = f"cost.rate[{i}]"
        if not re.fullmatch(r"\+[0-9]{0,15}", r.prefix):
            raise ConfigError(f"{source}: {key}.prefix: expected \"+\" and digits, got {r.prefix!r}")
        if r.modem and r.modem not in ids:
            raise ConfigError(f"{source}: {key}.modem: no [[modem]] has id {r.modem!r}")
    for i, m in enumerate(cfg.modem):
        key = f"modem[{i}]"
        if m.pace_max_s < m.pace_min_s:
            raise ConfigError(f"{source}: {key}.pace_max_s: must be at least pace_min_s ({m.pace_min_s:g}), "
                              f"got {m.pace_max_s:g}")
        if bool(m.warmup_days) != bool(m.warmup_start_per_day):
            raise ConfigError(f"{source}: {key}.warmup_days / warmup_start_per_day: give both or neither")
        if m.warmup_days and not m.max_per_day:
            raise ConfigError(f"{source}: {key}.warmup_days: the ramp rises to max_per_day, which is not set")
        if m.warmup_days and m.warmup_start_per_day > m.max_per_day:
            raise ConfigError(f"{source}: {key}.warmup_start_per_day: must not exceed max_per_day "
                              f"({m.max_per_day}), got {m.warmup_start_per_day}")


_DAILY_AT_RE = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")


def _check_retention(c: RetentionConfig, source: str) -> None:
    if c.daily_at and not _DAILY_AT_RE.fullmatch(c.daily_at):
        raise ConfigError(f"{source}: retention.daily_at: expected HH:MM (UTC) or \"\", got {c.daily_at!r}")
    if c.batch_rows < 1:
        raise ConfigError(f"{source}: retention.batch_rows: must be at least 1")
    if c.batch_ms < 0:
        raise ConfigError(f"{source}: retention.batch_ms: must not be negative, got {c.batch_ms:g}")
    if c.rollup_interval_s <= 0:
        raise ConfigError(f"{source}: retention.rollup_interval_s: must be positive")
    if not 0 < c.duty_cycle <= 1:
        raise ConfigError(f"{source}: retention.duty_cycle: expected more than 0 and at most 1, got {c.duty_cycle:g}")


def _check_smpp(c: SmppConfig, source: str) -> None:
    if c.listen:
        try:
            parse_listen(c.listen)
        except ValueError as exc:
            raise ConfigError(f"{source}: smpp.listen: {exc}") from None
    if bool(c.tls_cert_file) != bool(c.tls_key_file):
        raise ConfigError(f"{source}: smpp.tls_cert_file / smpp.tls_key_file: give both or neither")
    if not 1 <= c.window <= 1000:
        raise ConfigError(f"{source}: smpp.window: expected 1..1000, got {c.window}")
    if not 1 <= len(c.system_id) <= 15 or not c.system_id.isascii() or not c.system_id.isprintable():
        raise ConfigError(f"{source}: smpp.system_id: expected 1-15 printable ASCII characters")
    if c.max_pdu_bytes < 1024:
        raise ConfigError(f"{source}: smpp.max_pdu_bytes: expected at least 1024, got {c.max_pdu_bytes}")
    if c.response_timeout_s <= 0:
        raise ConfigError(f"{source}: smpp.response_timeout_s: must be positive")
    for i, r in enumerate(c.route):
        key = f"smpp.route[{i}]"
        if not 1 <= len(r.system_id) <= 15:
            raise ConfigError(f"{source}: {key}.system_id: expected 1-15 characters, got {r.system_id!r}")
        if r.sender_prefix and not re.fullmatch(r"\+[0-9]{1,15}", r.sender_prefix):
            raise ConfigError(f"{source}: {key}.sender_prefix: expected \"+\" and digits, got {r.sender_prefix!r}")
        if len(r.destination_addr) > 20:
            raise ConfigError(f"{source}: {key}.destination_addr: at most 20 characters")
        if r.text_regex:
            try:
                re.compile(r.text_regex)
            except re.error as exc:
                raise ConfigError(f"{source}: {key}.text_regex: not a regular expression: {exc}") from None


_MAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")
_MQTT_TOPIC_RE = re.compile(r"^[^/#+\x00][^#+\x00]{0,199}$")


def _check_email(c: EmailConfig, source: str) -> None:
    if c.smtp.host and not _MAIL_RE.match(c.smtp.from_address):
        raise ConfigError(f"{source}: email.smtp.from_address: expected an address, got {c.smtp.from_address!r}")
    if c.smtp.port == 0 or c.smtp.port > 65535:
        raise ConfigError(f"{source}: email.smtp.port: expected 1..65535, got {c.smtp.port}")
    if c.smtp.timeout_s <= 0:
        raise ConfigError(f"{source}: email.smtp.timeout_s: must be positive")
    if c.forward and not c.smtp.host:
        raise ConfigError(f"{source}: email.forward: give email.smtp.host (the server to send through)")
    for i, f in enumerate(c.forward):
        if not f.to:
            raise ConfigError(f"{source}: email.forward[{i}].to: give at least one address")
        for j, a in enumerate(f.to):
            if not _MAIL_RE.match(a):
                raise ConfigError(f"{source}: email.forward[{i}].to[{j}]: expected an address, got {a!r}")
    lc = c.listener
    if lc.enabled:
        if not re.fullmatch(r"[A-Za-z0-9.-]{1,253}", lc.domain) or ("." not in lc.domain and lc.domain != "localhost"):
            raise ConfigError(f"{source}: email.listener.domain: expected a domain such as sms.example.com, "
                              f"got {lc.domain!r}")
        if lc.port > 65535:
            raise ConfigError(f"{source}: email.listener.port: expected 0..65535, got {lc.port}")
        if lc.allowed_senders and not lc.api_key_file:
            raise ConfigError(f"{source}: email.listener.api_key_file: allowed_senders need an API key "
                              "to send as (a file holding it)")
    for i, a in enumerate(lc.allowed_senders):
        if not _MAIL_RE.match(a):
            raise ConfigError(f"{source}: email.listener.allowed_senders[{i}]: expected an address or "
                              f"*@domain, got {a!r}")
    if lc.max_size < 1024:
        raise ConfigError(f"{source}: email.listener.max_size: expected at least 1024, got {lc.max_size}")
    if bool(lc.tls_cert_file) != bool(lc.tls_key_file):
        raise ConfigError(f"{source}: email.listener.tls_cert_file / tls_key_file: give both or neither")
    if c.poll_interval_s <= 0 or c.retry_initial_s <= 0:
        raise ConfigError(f"{source}: email.poll_interval_s / retry_initial_s: must be positive")


def _check_rules(rules: tuple[RuleConfig, ...], source: str) -> None:
    names: set[str] = set()
    for i, r in enumerate(rules):
        key = f"rules[{i}]"
        name = r.name or f"rule{i + 1}"
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
            raise ConfigError(f"{source}: {key}.name: expected 1-64 of A-Z a-z 0-9 _ . -, got {r.name!r}")
        if name in names:
            raise ConfigError(f"{source}: {key}.name: duplicate rule name {name!r}")
        names.add(name)
        if r.sender and not re.fullmatch(r"[+0-9A-Za-z*?\[\]!. -]{1,32}", r.sender):
            raise ConfigError(f"{source}: {key}.sender: expected an E.164 number or a glob, got {r.sender!r}")
        if r.keyword and (len(r.keyword.split()) != 1 or len(r.keyword) > 40):
            raise ConfigError(f"{source}: {key}.keyword: expected one word, got {r.keyword!r}")
        if r.regex:
            try:
                re.compile(r.regex)
            except re.error as exc:
                raise ConfigError(f"{source}: {key}.regex: not a regular expression: {exc}") from None
        if not (r.tag or r.email or r.webhook or r.mqtt_topic or r.reply or r.command or r.stop):
            raise ConfigError(f"{source}: {key}: give an action (tag, email, webhook, mqtt_topic, reply, "
                              "command) or stop = true")
        for j, tag in enumerate(r.tag):
            if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,40}", tag):
                raise ConfigError(f"{source}: {key}.tag[{j}]: expected 1-40 of A-Z a-z 0-9 _ . : -, got {tag!r}")
        for j, a in enumerate(r.email):
            if not _MAIL_RE.match(a):
                raise ConfigError(f"{source}: {key}.email[{j}]: expected an address, got {a!r}")
        if r.webhook and not r.webhook.startswith(("http://", "https://")):
            raise ConfigError(f"{source}: {key}.webhook: expected an http(s) URL")
        if r.mqtt_topic and not _MQTT_TOPIC_RE.match(r.mqtt_topic):
            raise ConfigError(f"{source}: {key}.mqtt_topic: expected a relative topic without + or #, "
                              f"got {r.mqtt_topic!r}")
        if r.reply and r.reply_limit < 1:
            raise ConfigError(f"{source}: {key}.reply_limit: expected at least 1 (no reply: leave reply empty)")
        if r.reply and r.reply_window_s <= 0:
            raise ConfigError(f"{source}: {key}.reply_window_s: must be positive")
        if r.command:
            if not r.command[0].startswith("/"):
                raise ConfigError(f"{source}: {key}.command[0]: expected an absolute path (no shell, no PATH "
                                  f"lookup), got {r.command[0]!r}")
            if r.command_timeout_s <= 0:
                raise ConfigError(f"{source}: {key}.command_timeout_s: must be positive")


def rule_name(rule: RuleConfig, index: int) -> str:
    """A rule's name: its own, or ``rule<N>`` (1-based) when it has none."""
    return rule.name or f"rule{index + 1}"
_USSD_RE = re.compile(r"[0-9*#+]{1,64}")
_E164_RE = re.compile(r"\+[1-9][0-9]{5,14}")


def _check_keepalive(cfg: Config, source: str) -> None:
    k = cfg.keepalive
    ids = {m.id for m in cfg.modem}
    entries: list[tuple[str, Any]] = [("keepalive", k)]
    seen: set[str] = set()
    for i, e in enumerate(k.sim):
        key = f"keepalive.sim[{i}]"
        if e.modem not in ids:
            raise ConfigError(f"{source}: {key}.modem: no [[modem]] has id {e.modem!r}")
        if e.modem in seen:
            raise ConfigError(f"{source}: {key}.modem: {e.modem!r} is listed twice")
        seen.add(e.modem)
        entries.append((key, e))
    for key, e in entries:
        if e.every_days is not None and not 0 < e.every_days <= 3660:
            raise ConfigError(f"{source}: {key}.every_days: expected more than 0 and at most 3660 days")
        if e.ussd is not None and not _USSD_RE.fullmatch(e.ussd):
            raise ConfigError(f"{source}: {key}.ussd: expected 1-64 of 0-9 * # + (e.g. \"*100#\"), got {e.ussd!r}")
        if e.sms_to and not _E164_RE.fullmatch(e.sms_to):
            raise ConfigError(f"{source}: {key}.sms_to: expected an E.164 number (+ and 6-15 digits), got {e.sms_to!r}")
        if e.sms_text is not None and not 0 < len(e.sms_text) <= 160:
            raise ConfigError(f"{source}: {key}.sms_text: expected 1-160 characters")
    for key, e in entries:
        every = e.every_days if e.every_days is not None else k.every_days
        expiry = e.expiry_days if e.expiry_days is not None else k.expiry_days
        action = e.action or k.action
        enabled = e.enabled if e.enabled is not None else k.enabled
        if expiry and expiry <= every:
            raise ConfigError(f"{source}: {key}.expiry_days: must be more than every_days ({every:g}), or 0 "
                              "(the keep-alive must come before the operator's expiry)")
        if enabled and action == "sms" and not (e.sms_to or k.sms_to):
            raise ConfigError(f"{source}: {key}.sms_to: action = \"sms\" needs sms_to (an E.164 number)")
    for name in ("check_interval_s", "retry_after_s", "sms_ttl_s"):
        if not getattr(k, name) > 0:
            raise ConfigError(f"{source}: keepalive.{name}: must be positive")
    sc = cfg.schedules
    for name in ("poll_interval_s", "claim_s"):
        if not getattr(sc, name) > 0:
            raise ConfigError(f"{source}: schedules.{name}: must be positive")
