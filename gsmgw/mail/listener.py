"""E-mail → SMS: an SMTP server (aiosmtpd) in the gateway's event loop.

A mail to ``<number>@<domain>`` becomes an SMS with the mail's plain-text body (the
subject first if ``subject = "prepend"``), submitted through the intake service like
any other door: the same validation, opt-out, rate, quota and one durable commit, and
the SMTP ``250`` only after it. Several recipients make several messages in one batch.

Who may send:
- a client that authenticated (``AUTH PLAIN`` / ``AUTH LOGIN``, any user name, an API
  key with the ``send`` scope as the password) sends as that key. AUTH needs TLS
  (STARTTLS with ``tls_cert_file``) unless the listener is on loopback or
  ``allow_plain_auth`` says otherwise;
- otherwise the envelope sender must be in ``allowed_senders`` (an address, or
  ``*@domain``), and the mail is sent as the key in ``api_key_file``. An envelope
  sender is easy to forge: bind such a listener to loopback or a trusted network.

Refusals are SMTP replies with a reason (never a traceback): ``550 5.7.1`` sender not
allowed, ``550 5.1.2`` unknown domain, ``553 5.1.3`` not a phone number, ``552 5.3.4``
text too long, ``552`` over ``max_size``, ``550 5.6.0`` no text, ``451 4.7.1`` rate or
quota (try later).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.policy
import hashlib
import ipaddress
import logging
import re
import ssl
import weakref
from collections.abc import Callable
from email.parser import BytesParser
from pathlib import Path

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from gsmgw.config import Config, EmailListenerConfig
from gsmgw.errors import AdmissionError, ConfigError, ConflictError, ValidationError
from gsmgw.intake import Caller, IntakeService, SendRequest

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 100
_SIGNATURE = re.compile(r"\n-- ?\n.*\Z", re.DOTALL)  # RFC 3676 §4.3 "-- " signature separator


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def auth_needs_tls(host: str, allow_plain_auth: bool) -> bool:
    """AUTH (an API key in the clear) only over TLS, unless the listener is on loopback
    (nothing leaves the machine) or the admin said otherwise."""
    return not (is_loopback(host) or allow_plain_auth)


def sender_allowed(patterns: tuple[str, ...], address: str) -> bool:
    """``alerts@example.com`` exactly, or ``*@example.com`` for a whole domain (case-insensitive)."""
    a = address.strip().casefold()
    if not a or "@" not in a:
        return False
    domain = a.rpartition("@")[2]
    for p in patterns:
        p = p.casefold()
        if p == a or (p.startswith("*@") and p[2:] == domain):
            return True
    return False


def mail_text(raw: bytes, subject_mode: str) -> str | None:
    """The SMS text of a mail: its text/plain part (decoded from its charset and transfer
    encoding), line endings normalised, a ``-- `` signature and trailing blanks removed,
    the subject first when asked. None if the mail has no text/plain part."""
    msg = BytesParser(policy=email.policy.default).parsebytes(raw)
    part = msg.get_body(preferencelist=("plain",))
    if part is None:
        return None
    try:
        body = str(part.get_content())  # type: ignore[attr-defined]
    except (LookupError, ValueError):  # an unknown charset: read it as UTF-8, replacing
        payload = part.get_payload(decode=True)
        body = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload)
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    body = _SIGNATURE.sub("", body)
    body = "\n".join(line.rstrip() for line in body.split("\n")).strip()
    if subject_mode == "prepend":
        subject = " ".join(str(msg.get("Subject") or "").split())
        if subject:
            body = f"{subject}\n{body}" if body else subject
    return body


def _reply_for(exc: ValidationError) -> str:
    text = " ".join(str(exc.message).split())[:300]
    if exc.code == "text_too_long":
        return f"552 5.3.4 text too long for an SMS: {text}"
    if exc.code == "invalid_number":
        return f"553 5.1.3 {text}"
    if exc.code == "opted_out":
        return f"550 5.7.1 {text}"
    return f"550 5.6.0 {text}"


def _read_key(path: str) -> str:
    return Path(path).read_text(encoding="utf-8").strip()


class _Handler:
    """aiosmtpd's hooks; one instance serves every connection."""

    def __init__(self, door: MailListener) -> None:
        self.door = door

    # --- AUTH: the password is an API key -------------------------------------------------

    async def _check_key(self, secret: bytes) -> AuthResult:
        try:
            key = secret.decode("ascii")
        except UnicodeDecodeError:
            return AuthResult(success=False, handled=False)
        caller = await self.door.intake.authenticate(key)
        if caller is None or not caller.may("send"):
            return AuthResult(success=False, handled=False,
                              message="535 5.7.8 authentication failed: not a valid API key with the send scope")
        return AuthResult(success=True, auth_data=caller)

    async def auth_PLAIN(self, server: SMTP, args: list[str]) -> AuthResult:
        if len(args) == 1:
            blob = await server.challenge_auth("")
            if not isinstance(blob, bytes):
                return AuthResult(success=False, handled=True)
        else:
            try:
                blob = base64.b64decode(args[1].encode(), validate=True)
            except (binascii.Error, ValueError):
                return AuthResult(success=False, handled=False, message="501 5.5.2 cannot decode base64")
        fields = blob.split(b"\x00")
        if len(fields) != 3:
            return AuthResult(success=False, handled=False,
                              message="501 5.5.2 expected authzid NUL user NUL password")
        return await self._check_key(fields[2])

    async def auth_LOGIN(self, server: SMTP, args: list[str]) -> AuthResult:
        if len(args) == 1:
            user = await server.challenge_auth(SMTP.AuthLoginUsernameChallenge)
            if not isinstance(user, bytes):
                return AuthResult(success=False, handled=True)
        password = await server.challenge_auth(SMTP.AuthLoginPasswordChallenge)
        if not isinstance(password, bytes):
            return AuthResult(success=False, handled=True)
        return await self._check_key(password)

    # --- the envelope ---------------------------------------------------------------------

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          mail_options: list[str]) -> str:
        try:
            caller = session.auth_data if session.authenticated else None
            if caller is None:
                if not sender_allowed(self.door.cfg.allowed_senders, address):
                    return ("550 5.7.1 sender not allowed: authenticate (AUTH with an API key as the "
                            "password) or ask the admin to add it to [email.listener] allowed_senders")
                caller = await self.door.configured_caller()
                if caller is None:
                    return "451 4.3.0 the gateway's [email.listener] api_key_file holds no valid API key"
            if not isinstance(caller, Caller) or not caller.may("send"):
                return "550 5.7.1 this API key may not send (it needs the send scope)"
            wait_s = self.door.intake.take_request(caller)
            if wait_s > 0:
                return f"451 4.7.1 rate limited: try again in {wait_s:.0f} s"
            envelope.mail_from = address
            envelope.mail_options.extend(mail_options)
            self.door.callers[envelope] = caller
            return "250 2.1.0 OK"
        except Exception:
            log.exception("mail listener: MAIL failed")
            return "451 4.3.0 temporary failure, try again later"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        try:
            if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
                return f"452 4.5.3 at most {MAX_RECIPIENTS} recipients per mail"
            local, _, domain = address.rpartition("@")
            want = self.door.cfg.domain.casefold()
            if domain.casefold() != want:
                return f"550 5.1.2 unknown domain {domain[:100]!r}: this gateway takes mail for <number>@{want}"
            try:
                number = self.door.intake.number(local)
            except ValidationError as exc:
                return f"553 5.1.3 {local[:40]!r} is not a phone number: {' '.join(str(exc.message).split())[:200]}"
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
            self.door.numbers.setdefault(envelope, []).append(number)
            return "250 2.1.5 OK"
        except Exception:
            log.exception("mail listener: RCPT failed")
            return "451 4.3.0 temporary failure, try again later"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        key = envelope
        try:
            return await self.door.submit(envelope, self.door.callers.get(key),
                                          list(dict.fromkeys(self.door.numbers.get(key, []))))
        except Exception:
            log.exception("mail listener: DATA failed")
            return "451 4.3.0 temporary failure, try again later"
        finally:
            self.door.callers.pop(key, None)
            self.door.numbers.pop(key, None)

    async def handle_RSET(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.door.callers.pop(envelope, None)
        self.door.numbers.pop(envelope, None)
        return "250 OK"


class MailListener:
    """Started by the daemon when ``[email.listener] enabled``."""

    def __init__(self, config: Callable[[], Config], intake: IntakeService) -> None:
        self.config = config
        self.intake = intake
        self.server: asyncio.Server | None = None
        self.bound: list[tuple[str, int]] = []
        self._conns: list[SMTP] = []
        # Per envelope (aiosmtpd makes one per transaction): its caller and numbers; weak,
        # so a client that hangs up mid-transaction leaves nothing behind.
        self.callers: weakref.WeakKeyDictionary[Envelope, Caller] = weakref.WeakKeyDictionary()
        self.numbers: weakref.WeakKeyDictionary[Envelope, list[str]] = weakref.WeakKeyDictionary()
        self.accepted_total = 0
        self.refused_total = 0

    @property
    def cfg(self) -> EmailListenerConfig:
        return self.config().email.listener

    async def configured_caller(self) -> Caller | None:
        path = self.cfg.api_key_file
        if not path:
            return None
        try:
            key = await asyncio.to_thread(_read_key, path)
        except OSError as exc:
            log.error("mail listener: cannot read [email.listener] api_key_file %s: %s", path, exc)
            return None
        return await self.intake.authenticate(key)

    def _tls_context(self) -> ssl.SSLContext | None:
        c = self.cfg
        if not c.tls_cert_file:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            ctx.load_cert_chain(c.tls_cert_file, c.tls_key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"email.listener.tls_cert_file / tls_key_file: cannot load "
                              f"{c.tls_cert_file}, {c.tls_key_file}: {exc}") from None
        return ctx

    async def start(self) -> None:
        c = self.cfg
        handler = _Handler(self)
        tls = self._tls_context()
        auth_require_tls = auth_needs_tls(c.host, c.allow_plain_auth)
        loop = asyncio.get_running_loop()

        def factory() -> SMTP:
            proto = SMTP(handler, data_size_limit=c.max_size, hostname=c.domain, tls_context=tls,
                         auth_require_tls=auth_require_tls, ident="gsmgw", timeout=120, loop=loop)
            self._conns = [p for p in self._conns if p.transport is None or not p.transport.is_closing()]
            self._conns.append(proto)
            return proto

        self.server = await loop.create_server(factory, c.host, c.port)
        self.bound = [s.getsockname()[:2] for s in self.server.sockets]
        log.info("mail listener on %s for <number>@%s", ", ".join(f"{h}:{p}" for h, p in self.bound), c.domain)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for proto in self._conns:  # open sessions end too (no Server.close_clients() before 3.13)
                if proto.transport is not None:
                    proto.transport.close()
            self._conns.clear()
            await self.server.wait_closed()
            self.server = None

    async def submit(self, envelope: Envelope, caller: Caller | None, numbers: list[str]) -> str:
        if caller is None or not numbers:
            return "503 5.5.1 need MAIL and RCPT first"
        raw = envelope.original_content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        try:
            text = mail_text(raw, self.cfg.subject)
        except Exception as exc:  # a mail the parser cannot take apart: the sender must fix it
            log.info("mail from %s unreadable: %s", envelope.mail_from, exc)
            self.refused_total += 1
            return "550 5.6.0 cannot read the mail's text part"
        if text is None:
            self.refused_total += 1
            return "550 5.6.0 no text/plain part: send the SMS text as plain text"
        if not text:
            self.refused_total += 1
            return "550 5.6.0 the mail has no text to send"
        msg = BytesParser(policy=email.policy.default).parsebytes(raw, headersonly=True)
        mid = " ".join(str(msg.get("Message-ID") or "").split())[:300]
        idem = None
        if mid:
            # A client that retries after a lost reply sends the same Message-ID: queued once.
            h = hashlib.sha256("\x00".join([envelope.mail_from or "", mid, *numbers]).encode()).hexdigest()
            idem = f"mail-{h[:40]}"
        req = SendRequest(to=numbers, text=text, idempotency_key=idem, door="email",
                          door_data={"mail_from": (envelope.mail_from or "")[:200], "message_id": mid})
        try:
            res = await self.intake.submit(caller, req)
        except ValidationError as exc:
            self.refused_total += 1
            return _reply_for(exc)
        except AdmissionError as exc:
            return f"451 4.7.1 {' '.join(str(exc.message).split())[:300]}"
        except ConflictError:
            self.refused_total += 1
            return "550 5.7.0 this Message-ID was already used for a different mail"
        self.accepted_total += len(res.messages)
        log.info("mail from %s queued as batch %s (%d messages)", envelope.mail_from, res.batch_id,
                 len(res.messages))
        return f"250 2.0.0 queued as batch {res.batch_id} ({len(res.messages)} message(s))"


__all__ = ["MailListener", "auth_needs_tls", "is_loopback", "mail_text", "sender_allowed"]
