"""The MQTT door: one client connection to the broker, kept up with backoff.

On each connection: ``{base}/status`` = ``online`` (retained; the last will says
``offline``), the subscriptions (commands when ``[mqtt] commands = true``, Home
Assistant's ``homeassistant/status``), the discovery configs and the retained
state, then the outbox consumer (cursor ``mqtt``) starts. Events are published
with QoS 1 and the cursor moves past an event only after the broker's PUBACK, so
nothing is lost while the broker is down: delivery is at least once, and a repeat
carries the same ``event_id``.

The daemon starts and serves with the broker down: the door keeps trying to
connect with capped exponential backoff (``gsmgw.backoff``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gsmgw import __version__
from gsmgw.backoff import backoff_s
from gsmgw.config import Config, MqttConfig
from gsmgw.domain import EventType
from gsmgw.errors import AdmissionError, ConflictError, UnavailableError, ValidationError
from gsmgw.health import Readiness
from gsmgw.intake import Caller, IntakeService
from gsmgw.isotime import iso_or_value
from gsmgw.mqtt import commands as cmd
from gsmgw.mqtt import discovery
from gsmgw.mqtt.state import gateway_state, sim_state
from gsmgw.mqtt.topics import Topics, safe_subtopic
from gsmgw.outbox import OutboxConsumer, capped_backoff
from gsmgw.store import OutboxEvent, Store
from gsmgw.waits import wait_event
from gsmgw.webhooks import render_event

log = logging.getLogger(__name__)

CONSUMER = "mqtt"
RULE_EVENT = EventType.RULE_MQTT  # {"topic": relative subtopic, "message": the inbound SMS}
MAX_COMMANDS_IN_FLIGHT = 8
# Commands waiting for a slot; more are dropped (logged) so that a flood cannot grow memory.
MAX_COMMANDS_WAITING = 256
# How often the outbox is read for new events. Each read costs about 1 ms of CPU (three
# statements, two executor hops): on idle, reading every 0.2 s added 0.85 % of a core,
# every 1 s 0.2 % (x86 VM; a Pi is slower). So: every SLOW_POLL_S while nothing
# happens, every FAST_POLL_S for FAST_FOR_S after an event or a command.
SLOW_POLL_S = 1.0
FAST_POLL_S = 0.1
FAST_FOR_S = 30.0
MIN_STATE_GAP_S = 5.0


@dataclass
class MqttDeps:
    """What the door needs from the gateway (wired by ``daemon.py``)."""

    config: Callable[[], Config]
    store: Store
    intake: IntakeService
    modems: Callable[[], list[dict[str, Any]]]
    ussd: Callable[[str, str], Awaitable[str]]
    balances: Callable[[], dict[str, dict[str, Any]]]
    readiness: Callable[[], Any]
    host: str


def read_secret(path: str) -> str:
    """The first line of a secret file (a password, an API key); "" if it is empty."""
    lines = Path(path).read_text(encoding="utf-8").splitlines() if path else []
    return lines[0].strip() if lines else ""


def consumer_name(base_topic: str) -> str:
    """The outbox cursor of a base topic: hosts sharing a store and a base topic share it
    (each event once between them); another base topic gets every event itself."""
    if base_topic == "gsmgw":
        return CONSUMER
    name = f"{CONSUMER}:{base_topic}"
    return name if len(name) <= 40 else f"{CONSUMER}:" + hashlib.sha256(base_topic.encode()).hexdigest()[:20]


def _now_iso() -> str:
    return str(iso_or_value(dt.datetime.now(dt.UTC)))


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


class MqttDoor:
    def __init__(self, deps: MqttDeps) -> None:
        self.deps = deps
        self.client: aiomqtt.Client | None = None
        self.connected = False
        self.last_error: str | None = None
        self.connects = 0
        self.published_events = 0
        self.event_failures = 0  # publishes of outbox events the broker did not acknowledge
        self._task: asyncio.Task[None] | None = None
        self._state_task: asyncio.Task[None] | None = None
        self._consumer: OutboxConsumer | None = None
        self._state_kick = asyncio.Event()
        self._jobs: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(MAX_COMMANDS_IN_FLIGHT)
        self._discovered: set[str] = set()
        self._sims_published: tuple[str, ...] = ()
        self._sim_topics: set[str] = set()
        self.dropped_commands = 0
        self._fast_until = 0.0
        self.republished = 0  # how many times discovery + state went out (connects, HA births)

    # --- config --------------------------------------------------------------------

    @property
    def cfg(self) -> MqttConfig:
        return self.deps.config().mqtt

    @property
    def consumer_name(self) -> str:
        return consumer_name(self.cfg.base_topic)

    @property
    def topics(self) -> Topics:
        c = self.cfg
        return Topics(c.base_topic, c.discovery_prefix)

    def status(self) -> dict[str, Any]:
        """For /api/v1/status and health: is the broker connected?"""
        return {"connected": self.connected, "broker": self._broker_label(), "connects": self.connects,
                "last_error": self.last_error, "events_published": self.published_events,
                "event_failures": self.event_failures}

    def readiness(self, r: Readiness) -> Readiness:
        """The gateway's readiness with the broker's: not connected (after an attempt
        failed) is "degraded" with a reason; messages still go out, so never "fail"."""
        if self.connected or self.last_error is None:
            return r
        status = "degraded" if r.status == "ok" else r.status
        return Readiness(status, (*r.reasons, f"mqtt: not connected to {self._broker_label()}: {self.last_error}"))

    def _broker_label(self) -> str:
        u = urlsplit(self.cfg.url)
        return f"{u.scheme}://{u.hostname}:{u.port or (8883 if u.scheme == 'mqtts' else 1883)}"

    def _make_client(self) -> aiomqtt.Client:
        c = self.cfg
        u = urlsplit(c.url)
        tls = u.scheme == "mqtts"
        password = read_secret(c.password_file) if c.password_file else (c.password or None)
        tls_context = None
        if tls:
            tls_context = ssl.create_default_context(cafile=c.tls_ca_file or None)
        return aiomqtt.Client(
            u.hostname or "localhost", u.port or (8883 if tls else 1883),
            username=c.username or None, password=password,
            identifier=c.client_id or f"gsmgw-{self.deps.host}"[:64],
            protocol=aiomqtt.ProtocolVersion.V5,
            will=aiomqtt.Will(self.topics.availability, "offline", qos=1, retain=True),
            keepalive=c.keepalive_s, timeout=c.publish_timeout_s, tls_context=tls_context,
            logger=log,
            # Small packets back to back (a PUBACK, then a reply): without this, Nagle's
            # algorithm and the broker's delayed ACK add ~40 ms to each (measured: 87 ms
            # per send command -> see bench/mqtt.py).
            socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
        )

    # --- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Returns at once: the broker may be down; the door connects when it can.

        The outbox cursor is made first (a door switched on for the first time starts
        after the latest event): every event from the start on is published once the
        broker is reached, also one that comes before the first connection is up."""
        store = self.deps.store
        await store.call(store.events.ensure_cursor, self.consumer_name, start="latest")
        self._task = asyncio.create_task(self._run(), name="mqtt-door")

    async def stop(self) -> None:
        if self._consumer is not None:
            # First, while the broker is still connected: the event in hand is finished
            # and its cursor moved, so that a restart does not publish it again.
            consumer, self._consumer = self._consumer, None
            await consumer.stop()
        client = self.client
        if client is not None and self.connected:
            # A clean disconnect sends no will: say offline ourselves.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.publish(self.topics.availability, "offline", qos=1, retain=True),
                                       timeout=2.0)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self._stop_session()

    def notify(self) -> None:
        """New events were committed (the outbox consumer reads now)."""
        if self._consumer is not None:
            self._consumer.notify()

    async def _run(self) -> None:
        attempt = 0
        while True:
            try:
                client = self._make_client()
                async with client:
                    attempt = 0
                    self.connects += 1
                    self.client, self.connected, self.last_error = client, True, None
                    log.info("mqtt: connected to %s", self._broker_label())
                    await self._session(client)
            except aiomqtt.MqttError as exc:
                self.last_error = f"{exc}"[:300]
            except OSError as exc:  # TLS files, a password file that went away
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                log.exception("mqtt: session failed")
            finally:
                was = self.connected
                self.connected, self.client = False, None
                await self._stop_session()
            attempt += 1
            delay_s = backoff_s(attempt, initial_s=self.cfg.reconnect_initial_s, max_s=self.cfg.reconnect_max_s)
            log.log(logging.WARNING if was or attempt == 1 else logging.DEBUG,
                    "mqtt: %s %s: %s; retrying in %.1f s", "lost" if was else "cannot reach",
                    self._broker_label(), self.last_error, delay_s)
            await asyncio.sleep(delay_s)

    async def _session(self, client: aiomqtt.Client) -> None:
        c, tp = self.cfg, self.topics
        await client.publish(tp.availability, "online", qos=1, retain=True)
        if c.commands:
            for name in ("send", "cancel", "ussd", "notify"):
                await client.subscribe(tp.command(name), qos=1)
        if c.discovery:
            await client.subscribe(tp.ha_status, qos=1)
        try:
            await self.publish_all()
        except (aiomqtt.MqttError, ConnectionError):
            raise
        except Exception:  # the store, say: the state loop tries again; stay connected
            log.exception("mqtt: publishing discovery and state failed")
        self._consumer = OutboxConsumer(
            self.consumer_name, self.deps.store, self._handle_event,
            backoff=capped_backoff(initial_s=c.reconnect_initial_s, max_s=c.reconnect_max_s),
            poll_interval_s=SLOW_POLL_S)
        await self._consumer.start()
        self._state_task = asyncio.create_task(self._state_loop(), name="mqtt-state")
        async for message in client.messages:
            self._on_message(message)

    async def _stop_session(self) -> None:
        tasks = [t for t in (self._state_task,) if t is not None] + list(self._jobs)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._state_task = None
        self._jobs.clear()
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    # --- publishing ----------------------------------------------------------------

    async def _publish(self, topic: str, payload: str | bytes, *, retain: bool = False,
                       properties: Properties | None = None) -> None:
        client = self.client
        if client is None or not self.connected:
            raise ConnectionError("not connected to the MQTT broker")
        # QoS 1: returns once the broker acknowledged (PUBACK), else raises.
        await client.publish(topic, payload, qos=1, retain=retain, properties=properties,
                             timeout=self.cfg.publish_timeout_s)

    async def publish_all(self) -> None:
        """Discovery configs (if on) and every retained state topic."""
        sims = await self.publish_state()
        if self.cfg.discovery:
            await self.publish_discovery(sims)
        self.republished += 1

    async def publish_discovery(self, sims: list[dict[str, Any]]) -> None:
        c, tp = self.cfg, self.topics
        notify = c.commands and bool(c.notify_to)
        balance = bool(self.deps.config().inbound.balance_ussd)
        entities = discovery.all_entities(tp, sims, host=self.deps.host, version=__version__, notify=notify,
                                          balance=balance)
        for topic in discovery.removals(self._discovered, entities):
            await self._publish(topic, b"", retain=True)
        # Entities switched off now or since the last run: an empty config removes them.
        if not notify:
            topic = discovery.gateway_entities(tp, host=self.deps.host, version=__version__, notify=True)[-1][0]
            await self._publish(topic, b"", retain=True)
        if not balance:
            for s in sims:
                await self._publish(discovery.balance_topic(tp, str(s["id"])), b"", retain=True)
        for topic, payload in entities:
            await self._publish(topic, _dumps(payload), retain=True)
        self._discovered = {t for t, _p in entities}
        self._sims_published = tuple(sorted(str(s["id"]) for s in sims))

    async def publish_state(self) -> list[dict[str, Any]]:
        d, tp = self.deps, self.topics
        store = d.store
        now = _now_iso()
        midnight = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        rows = {r["id"]: r for r in await store.call(store.modems.list_modems) if r.get("host") == d.host}
        today = await store.call_read(store.views.sim_counts, midnight)
        queue = await store.call_read(store.views.queue)
        balances = d.balances()
        sims = [sim_state(m, stored=rows.get(str(m["id"])), today=today.get(str(m["id"])),
                          balance=balances.get(str(m["id"])), updated_at=now) for m in d.modems()]
        for s in sims:
            await self._publish(tp.sim_state(str(s["id"])), _dumps(s), retain=True)
        topics = {tp.sim_state(str(s["id"])) for s in sims}
        for gone in sorted(self._sim_topics - topics):  # a SIM removed: its retained state goes
            await self._publish(gone, b"", retain=True)
        self._sim_topics = topics
        gw = gateway_state(host=d.host, version=__version__, readiness=d.readiness(), queue=queue, sims=sims,
                           commands=self.cfg.commands, updated_at=now)
        await self._publish(tp.gateway_state, _dumps(gw), retain=True)
        return sims

    async def _state_loop(self) -> None:
        while True:
            await wait_event(self._state_kick, self.cfg.state_interval_s)
            self._state_kick.clear()
            self._maybe_slow_down()
            try:
                sims = await self.publish_state()
                if self.cfg.discovery and tuple(sorted(str(s["id"]) for s in sims)) != self._sims_published:
                    await self.publish_discovery(sims)  # a SIM came or went
            except (aiomqtt.MqttError, ConnectionError) as exc:
                # A slow broker: try again next round (a lost one ends the session anyway).
                log.debug("mqtt: state publish failed: %s", exc)
            except Exception:
                log.exception("mqtt: state publish failed")
            # Events kick a round (sent today, the queue), but at most one every
            # MIN_STATE_GAP_S: the queue count is not free with a million queued.
            await asyncio.sleep(min(MIN_STATE_GAP_S, self.cfg.state_interval_s))

    def _busy(self, *, read_now: bool = False) -> None:
        """Something happens: read the outbox often for a while (see SLOW_POLL_S)."""
        self._fast_until = time.monotonic() + FAST_FOR_S
        if self._consumer is not None:
            self._consumer.poll_interval_s = FAST_POLL_S
            if read_now:
                self._consumer.notify()

    def _maybe_slow_down(self) -> None:
        if self._consumer is not None and time.monotonic() > self._fast_until:
            self._consumer.poll_interval_s = SLOW_POLL_S

    async def _handle_event(self, ev: OutboxEvent) -> None:
        self._busy()
        try:
            await self._publish_event(ev)
        except Exception:
            self.event_failures += 1
            raise

    async def _publish_event(self, ev: OutboxEvent) -> None:
        """The outbox handler: raises until the broker acknowledged (then the cursor moves)."""
        tp = self.topics
        if ev.type == RULE_EVENT:
            data = ev.data()
            sub = safe_subtopic(data.get("topic"))
            if sub is None:
                log.warning("mqtt: event %s: rule topic %r is not a safe relative topic; skipped",
                            ev.id, data.get("topic"))
                return
            await self._publish(tp.rule(sub), _dumps(data.get("message")))
            self.published_events += 1
            return
        msg = None
        if ev.message_id:
            row = await self.deps.store.call(self.deps.store.messages.get_message, ev.message_id)
            msg = SimpleNamespace(**row) if row is not None else None
        body = render_event(ev, msg)
        await self._publish(tp.event(ev.type), body)
        if ev.type == "sms:received":
            data = ev.data()
            last = {"event_type": "received", "event_id": ev.id, "id": data.get("id"),
                    "from": data.get("from"), "sim": data.get("sim") or ev.modem_id,
                    "text": data.get("text"), "received_at": data.get("received_at")}
            await self._publish(tp.inbound_last, _dumps(last), retain=True)
            await self._publish(tp.inbound_event, _dumps(last))
        self.published_events += 1
        self._state_kick.set()

    # --- commands and Home Assistant's birth ------------------------------------------

    def _on_message(self, message: aiomqtt.Message) -> None:
        topic = str(message.topic)
        payload = message.payload if isinstance(message.payload, bytes) else str(message.payload or "").encode()
        if topic == self.topics.ha_status:
            if payload.strip() == b"online" and self.cfg.discovery:
                log.info("mqtt: Home Assistant is online: publishing discovery and state again")
                self._spawn(self._republish)
            return
        name = self.topics.command_of(topic)
        if name is None or not self.cfg.commands:
            return
        if message.retain:  # a command left retained by mistake would run at every connect
            log.warning("mqtt: retained command on %s ignored (publish commands without retain)", topic)
            return
        if len(self._jobs) >= MAX_COMMANDS_WAITING:
            self.dropped_commands += 1
            if self.dropped_commands % 100 == 1:
                log.warning("mqtt: %d commands waiting; dropped %d so far", len(self._jobs), self.dropped_commands)
            return
        self._spawn(self._command, name, payload, message.properties)

    def _spawn(self, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        async def run() -> None:
            async with self._slots:
                await fn(*args)

        task = asyncio.create_task(run())
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)

    async def _republish(self) -> None:
        try:
            await self.publish_all()
        except (aiomqtt.MqttError, ConnectionError) as exc:
            log.debug("mqtt: re-publishing failed: %s", exc)
        except Exception:
            log.exception("mqtt: re-publishing discovery and state failed")

    async def _command(self, name: str, payload: bytes, props: Properties | None) -> None:
        self._busy(read_now=True)  # its events (sent, delivered, a USSD reply) follow soon
        rid: str | int | None = None
        try:
            if name == "notify":
                rid, req = cmd.notify_request(payload, self.cfg.notify_to)
                reply = await self._send(req)
            else:
                data = cmd.decode(payload)
                rid = cmd.request_id(data)
                if name == "send":
                    reply = await self._send(cmd.send_request(data))
                elif name == "cancel":
                    reply = await self._cancel(cmd.cancel_target(data))
                else:
                    reply = await self._ussd(data)
            body: dict[str, Any] = {"id": rid, "ok": True, **reply}
        except cmd.CommandError as exc:
            body = {"id": rid, "ok": False, "error": exc.as_dict()}
        except (ValidationError, AdmissionError, ConflictError, UnavailableError) as exc:
            err: dict[str, Any] = {"code": exc.code, "message": exc.message}
            if getattr(exc, "field", None):
                err["field"] = exc.field
            if getattr(exc, "retry_after_s", None):
                err["retry_after_s"] = exc.retry_after_s
            body = {"id": rid, "ok": False, "error": err}
        except Exception as exc:  # never crash the door on a command
            log.exception("mqtt: %s command failed", name)
            body = {"id": rid, "ok": False, "error": {"code": "internal", "message": type(exc).__name__}}
        await self._reply(name, body, props)

    async def _reply(self, name: str, body: dict[str, Any], props: Properties | None) -> None:
        topic = self.topics.response(name)
        out_props = None
        want = getattr(props, "ResponseTopic", None) if props is not None else None
        if want and self.topics.response_allowed(want):
            topic = want
        corr = getattr(props, "CorrelationData", None) if props is not None else None
        if corr:
            out_props = Properties(PacketTypes.PUBLISH)
            out_props.CorrelationData = corr
        with contextlib.suppress(aiomqtt.MqttError, ConnectionError):
            await self._publish(topic, _dumps(body), properties=out_props)

    async def _caller(self, scope: str) -> Caller:
        key = read_secret(self.cfg.api_key_file) if self.cfg.api_key_file else ""
        caller = await self.deps.intake.authenticate(key or None)
        if caller is None:
            raise cmd.CommandError("unauthorized", "the key in [mqtt] api_key_file is not a valid API key")
        if not caller.may(scope):
            raise cmd.CommandError("forbidden", f"the key in [mqtt] api_key_file lacks the {scope!r} scope")
        wait_s = self.deps.intake.take_request(caller)
        if wait_s > 0:
            raise AdmissionError("rate_limited", "too many requests for this key; retry later", wait_s)
        return caller

    async def _send(self, req: Any) -> dict[str, Any]:
        caller = await self._caller("send")
        res = await self.deps.intake.submit(caller, req)
        out: dict[str, Any] = {
            "batch_id": res.batch_id, "state": "queued", "replayed": res.replayed,
            "messages": [{"id": m.id, "to": m.to, "encoding": m.encoding, "parts": m.parts} for m in res.messages],
        }
        if len(res.messages) == 1:
            out["message_id"] = res.messages[0].id
        if res.warnings:
            out["warnings"] = list(res.warnings)
        return out

    async def _cancel(self, message_id: str) -> dict[str, Any]:
        caller = await self._caller("send")
        res = await self.deps.intake.cancel(caller, message_id)
        if res.state is None:
            raise cmd.CommandError("not_found", f"no message {message_id!r} for this key", field="message_id")
        return {"message_id": message_id, "cancelled": res.cancelled, "state": res.state}

    async def _ussd(self, data: dict[str, Any]) -> dict[str, Any]:
        caller = await self._caller("admin")
        del caller
        sim, code = cmd.ussd_target(data, {str(m["id"]) for m in self.deps.modems()})
        started = time.monotonic()
        try:
            reply = await self.deps.ussd(sim, code)
        except KeyError:
            raise cmd.CommandError("unknown_sim", f"no modem with id {sim!r} on this gateway", field="sim") from None
        except ValueError as exc:
            raise cmd.CommandError("invalid_ussd", str(exc)[:300], field="code") from None
        except Exception as exc:
            raise cmd.CommandError("ussd_failed", f"{type(exc).__name__}: {exc}"[:300]) from None
        return {"sim": sim, "code": code, "text": reply, "took_s": round(time.monotonic() - started, 3)}
