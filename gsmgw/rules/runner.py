"""Inbound rules at work: a consumer of the durable outbox (cursor ``rules``) that runs
the ``[[rules]]`` of the config, in order, on each ``sms:received``.

- STOP/START come first and stay there: a message that is an opt-out keyword never
  reaches the rules (the store has already recorded the opt-out), and an auto-reply
  to an opted-out number is refused by the intake service like any other message.
- Tags and the hand-offs to doors (``rule.email``, ``rule.webhook``, ``rule.mqtt``
  outbox events, which the e-mail, webhook and MQTT doors consume) are written in one
  transaction per (message, rule), once (``store.rules.apply_rule``): rules import no
  door.
- An auto-reply goes through the intake service (validation, opt-out, the one
  commit) from the SIM that received the message, rate-limited per (rule, sender)
  with the window kept in the store; its idempotency key is made from the rule and
  the message, so a replayed event never queues it twice.
- A command runs without a shell: the admin's argv as written, the message as JSON
  on stdin, a timeout (the whole process group is killed), its output read and
  capped; the exit status is logged and recorded in ``rule_runs``.

Each event is handled at least once (``gsmgw.outbox``): after a crash in the middle
of an event, the store-side actions and the reply are not repeated; a command that
had started but not finished runs again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import Callable, Mapping
from typing import Any

from gsmgw.config import Config, RuleConfig, rule_name
from gsmgw.domain import EventType
from gsmgw.errors import AdmissionError, ConflictError, ValidationError
from gsmgw.intake import Caller, IntakeService, SendRequest
from gsmgw.outbox import OutboxConsumer, capped_backoff
from gsmgw.pool.optout import KeywordMatcher
from gsmgw.rules.match import match, render
from gsmgw.store import OutboxEvent, Store

log = logging.getLogger(__name__)

CONSUMER = "rules"
# Auto-replies are sent as this caller (messages.api_key_id "rules"): no rate or quota
# of an API key applies; the per-sender window does.
RULES_CALLER = Caller(id="rules", name="inbound rules", scopes=frozenset({"send"}))
COMMAND_ENV_KEYS = ("PATH", "LANG", "LC_ALL", "TZ")


async def run_command(argv: tuple[str, ...], stdin: bytes, *, timeout_s: float,
                      output_max: int) -> tuple[str, dict[str, Any]]:
    """Run ``argv`` (no shell), feed ``stdin``, keep at most ``output_max`` bytes of each of
    stdout and stderr. Returns (status, detail): status ``exit:N``, ``timeout`` or ``error``."""
    env = {k: os.environ[k] for k in COMMAND_ENV_KEYS if k in os.environ}
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, start_new_session=True, env=env, cwd="/")
    except OSError as exc:
        return "error", {"error": f"cannot run {argv[0]}: {exc.strerror or exc}"}

    async def pump(stream: asyncio.StreamReader | None) -> bytes:
        kept = bytearray()
        if stream is None:
            return b""
        while chunk := await stream.read(65536):
            if len(kept) < output_max:
                kept += chunk[: output_max - len(kept)]
        return bytes(kept)

    async def feed() -> None:
        assert proc.stdin is not None
        try:
            proc.stdin.write(stdin)
            await proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # it did not read its input: its business
        finally:
            proc.stdin.close()

    def kill() -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    try:
        async with asyncio.timeout(timeout_s):
            out, err, _ = await asyncio.gather(pump(proc.stdout), pump(proc.stderr), feed())
            rc = await proc.wait()
    except TimeoutError:
        kill()
        await proc.wait()
        return "timeout", {"error": f"killed after {timeout_s:g} s"}
    except BaseException:
        kill()
        with contextlib.suppress(Exception):
            await asyncio.shield(proc.wait())
        raise
    kill()  # anything it left running in its process group
    return f"exit:{rc}", {"exit": rc, "stdout": out.decode("utf-8", "replace"),
                          "stderr": err.decode("utf-8", "replace")}


def _is_number(sender: str) -> bool:
    return sender.startswith("+") and sender[1:].isdigit()


class RulesRunner:
    """Started by the daemon when the config has ``[[rules]]``."""

    def __init__(self, config: Callable[[], Config], store: Store, intake: IntakeService, *,
                 poll_interval_s: float = 0.5) -> None:
        self.config = config
        self.store = store
        self.intake = intake
        self.poll_interval_s = poll_interval_s
        self.consumer: OutboxConsumer | None = None
        self._matcher_for: Any = None
        self._matcher = KeywordMatcher((), ())
        self.matched_total = 0
        self.replies_total = 0
        self.limited_total = 0
        self.commands_total = 0

    async def start(self) -> None:
        self.consumer = OutboxConsumer(CONSUMER, self.store, self.handle, types=("sms:received",),
                                       backoff=capped_backoff(1.0, 60.0), poll_interval_s=self.poll_interval_s)
        await self.consumer.start()

    async def stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()
            self.consumer = None

    def notify(self) -> None:
        if self.consumer is not None:
            self.consumer.notify()

    def _optout(self, cfg: Config, text: str) -> bool:
        if self._matcher_for is not cfg.inbound:
            self._matcher = KeywordMatcher(cfg.inbound.stop_keywords, cfg.inbound.start_keywords)
            self._matcher_for = cfg.inbound
        return self._matcher.classify(text) is not None

    async def handle(self, ev: OutboxEvent) -> None:
        cfg = self.config()
        if not cfg.rules:
            return
        try:
            msg = json.loads(ev.payload or "{}")
        except ValueError:
            return
        if not isinstance(msg, dict) or not msg.get("id"):
            return
        if msg.get("complete", True) and self._optout(cfg, str(msg.get("text") or "")):
            return  # STOP/START: handled by the opt-out list, never by rules
        for i, rule in enumerate(cfg.rules):
            variables = match(rule, msg, cfg.api.default_region)
            if variables is None:
                continue
            self.matched_total += 1
            await self.apply(rule_name(rule, i), rule, msg, variables, event_id=ev.id)
            if rule.stop:
                break

    async def apply(self, name: str, rule: RuleConfig, msg: Mapping[str, Any], variables: Mapping[str, str],
                    *, event_id: int) -> None:
        inbound_id, sim = str(msg["id"]), str(msg.get("sim") or "") or None
        events: list[tuple[EventType, dict[str, Any]]] = []
        message = dict(msg)
        if rule.email:
            events.append((EventType.RULE_EMAIL, {"rule": name, "to": list(rule.email), "message": message}))
        if rule.webhook:
            events.append((EventType.RULE_WEBHOOK, {"rule": name, "url": rule.webhook, "message": message}))
        if rule.mqtt_topic:
            events.append((EventType.RULE_MQTT, {"topic": rule.mqtt_topic, "message": message}))
        if await self.store.call(self.store.rules.apply_rule, inbound_id, name, tags=rule.tag, events=events,
                                 modem_id=sim):
            log.info("rule %s matched inbound %s from %s%s", name, inbound_id, msg.get("from"),
                     f" (tags {', '.join(rule.tag)})" if rule.tag else "")
        if rule.reply:
            await self._reply(name, rule, msg, variables)
        if rule.command:
            await self._command(name, rule, msg, event_id)

    async def _reply(self, name: str, rule: RuleConfig, msg: Mapping[str, Any],
                     variables: Mapping[str, str]) -> None:
        store = self.store
        inbound_id, sender = str(msg["id"]), str(msg.get("from") or "")
        if await store.call(store.rules.run_status, inbound_id, name, "reply") is not None:
            return  # done (or refused) before this event was replayed
        if not _is_number(sender):
            await store.call(store.rules.record_run, inbound_id, name, "reply", "skipped",
                             f"the sender {sender[:32]!r} is not a number that can be answered")
            return
        allowed = await store.call(store.rules.take_reply, name, sender, inbound_id, limit=rule.reply_limit,
                                   window_s=rule.reply_window_s)
        if not allowed:
            self.limited_total += 1
            log.info("rule %s: no auto-reply to %s (%d already within %g s: loop guard)", name, sender,
                     rule.reply_limit, rule.reply_window_s)
            await store.call(store.rules.record_run, inbound_id, name, "reply", "limited",
                             f"{rule.reply_limit} per {rule.reply_window_s:g} s reached")
            return
        req = SendRequest(to=sender, text=render(rule.reply, variables), sim=str(msg.get("sim") or "") or None,
                          idempotency_key=f"rule:{name}:{inbound_id}", door="rules",
                          door_data={"rule": name, "inbound_id": inbound_id})
        try:
            res = await self.intake.submit(RULES_CALLER, req)
        except (ValidationError, ConflictError) as exc:
            log.warning("rule %s: auto-reply to %s refused: %s", name, sender, exc)
            await store.call(store.rules.record_run, inbound_id, name, "reply", "refused", str(exc)[:500])
            return
        except AdmissionError as exc:
            # Queue full or store unusable: this event is retried later (the window counted
            # this message already, and the idempotency key keeps the reply single).
            log.warning("rule %s: auto-reply to %s deferred: %s", name, sender, exc)
            raise
        self.replies_total += 1
        await store.call(store.rules.record_run, inbound_id, name, "reply", "sent", ",".join(res.message_ids))

    async def _command(self, name: str, rule: RuleConfig, msg: Mapping[str, Any], event_id: int) -> None:
        store = self.store
        inbound_id = str(msg["id"])
        status = await store.call(store.rules.run_status, inbound_id, name, "command")
        if status is not None and status != "started":
            return  # ran to its end before this event was replayed
        await store.call(store.rules.record_run, inbound_id, name, "command", "started", "")
        stdin = json.dumps({"rule": name, "event_id": event_id, "message": dict(msg)},
                           ensure_ascii=False).encode()
        self.commands_total += 1
        status, detail = await run_command(rule.command, stdin, timeout_s=rule.command_timeout_s,
                                           output_max=rule.command_output_max)
        level = logging.INFO if status == "exit:0" else logging.WARNING
        log.log(level, "rule %s: %s on inbound %s: %s%s", name, rule.command[0], inbound_id, status,
                f" ({str(detail.get('stderr') or detail.get('error') or '').strip()[:200]})"
                if status != "exit:0" else "")
        await store.call(store.rules.record_run, inbound_id, name, "command", status,
                         json.dumps(detail, ensure_ascii=False))


__all__ = ["CONSUMER", "RULES_CALLER", "RulesRunner", "run_command"]
