"""Pure pieces: keywords, balance parsing, dedup keys, part joining, signatures, matching."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from types import SimpleNamespace

import pytest

from gsmgw.backoff import backoff_s
from gsmgw.config import (
    DEFAULT_START_KEYWORDS,
    DEFAULT_STOP_KEYWORDS,
    WebhooksConfig,
    WebhookSubscription,
)
from gsmgw.pool.optout import (
    KeywordMatcher,
    join_parts,
    normalise_keyword,
    parse_balance,
    part_dedup_key,
)
from gsmgw.sms import decode_pdu, encode_deliver
from gsmgw.webhooks import event_matches, sign, signature_header, verify
from gsmgw.webhooks.payload import host_allowed, targets

SCTS = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.UTC)
DEFAULT = KeywordMatcher(DEFAULT_STOP_KEYWORDS, DEFAULT_START_KEYWORDS)


@pytest.mark.parametrize(("text", "expected"), [
    ("STOP", ("stop", "stop")),
    ("  Stop! ", ("stop", "stop")),
    ("stop.", ("stop", "stop")),
    ("Stop all", ("stop", "stop all")),
    ("ARRÊT", ("stop", "arret")),
    ("Arrêter", ("stop", "arreter")),
    ("désabonner", ("stop", "desabonner")),
    ("STOPP", ("stop", "stopp")),
    ("Abmelden", ("stop", "abmelden")),
    ("BAJA", ("stop", "baja")),
    ("Basta!", ("stop", "basta")),
    ("unsubscribe", ("stop", "unsubscribe")),
    ("START", ("start", "start")),
    ("Démarrer", ("start", "demarrer")),
    ("unstop", ("start", "unstop")),
    ("please stop", None),
    ("don't stop me now", None),
    ("stopwatch", None),
    ("", None),
    ("STOP " * 30, None),
])
def test_default_keywords(text: str, expected: tuple[str, str] | None) -> None:
    assert DEFAULT.classify(text) == expected


def test_custom_keywords_and_stop_wins_a_conflict() -> None:
    m = KeywordMatcher(["Halt", "NEIN danke"], ["halt", "Weiter"])
    assert m.classify("halt") == ("stop", "halt")
    assert m.classify("nein, DANKE!") == ("stop", "nein danke")
    assert m.classify("weiter") == ("start", "weiter")
    assert m.classify("stop") is None
    assert normalise_keyword("  Ça  va? ") == "ca va"


@pytest.mark.parametrize(("text", "pattern", "value"), [
    ("Your balance is 12.34 EUR. Valid until 31.12.2027.", r"(-?\d+(?:[.,]\d+)?)", 12.34),
    ("Ihr Guthaben beträgt 5,20 EUR", r"(-?\d+(?:[.,]\d+)?)", 5.2),
    ("Balance: -3.50 GBP", r"Balance: (-?[\d.]+)", -3.5),
    ("Credit 1,234.56 USD", r"Credit ([\d,]+\.\d+)", 1234.56),
    ("Saldo 0 MXN", r"Saldo (\d+)", 0.0),
    ("No balance here", r"Balance: (\d+)", None),
    ("Balance: .", r"Balance: (\S+)", None),
])
def test_parse_balance(text: str, pattern: str, value: float | None) -> None:
    assert parse_balance(text, pattern) == value


def _deliver(text: str, **kw: object) -> list:
    pdus = encode_deliver("+447700900700", text, scts=SCTS, **kw)
    return [decode_pdu(p) for p in ([pdus] if isinstance(pdus, str) else pdus)]


def test_dedup_key_is_stable_and_separates_what_differs() -> None:
    [a] = _deliver("same text")
    [a2] = _deliver("same text")
    assert part_dedup_key("sim1", a) == part_dedup_key("sim1", a2)
    assert part_dedup_key("sim1", a) != part_dedup_key("sim2", a)  # another SIM got its own copy
    [b] = _deliver("other text")
    assert part_dedup_key("sim1", a) != part_dedup_key("sim1", b)
    [later] = [decode_pdu(p) for p in encode_deliver("+447700900700", "same text",
                                                     scts=SCTS + dt.timedelta(seconds=1))]
    assert part_dedup_key("sim1", a) != part_dedup_key("sim1", later)  # sent again = another SMS
    p1, p2 = _deliver("x" * 200, concat_ref=1)
    q1, _ = _deliver("x" * 200, concat_ref=2)
    assert len({part_dedup_key("s", p) for p in (p1, p2, q1)}) == 3  # UDH is in the key


def test_join_parts_joins_ucs2_octets_so_split_surrogates_survive() -> None:
    text = "😀" * 40  # 160 UTF-16 units, 67 per part: a pair straddles a boundary
    parts = _deliver(text)
    rows = [SimpleNamespace(encoding=str(p.encoding), text=p.text, user_data=p.user_data.hex()) for p in parts]
    assert join_parts(rows) == text
    gsm = [SimpleNamespace(encoding="gsm7", text=t, user_data="") for t in ("ab", "cd")]
    assert join_parts(gsm) == "abcd"


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"event_id":1,"type":"sms:received"}'
    expected = hmac.new(b"k3y", b"1763766000." + body, hashlib.sha256).hexdigest()
    assert sign("k3y", 1763766000, body) == expected
    header = signature_header("k3y", 1763766000, body)
    assert header == f"t=1763766000,v1={expected}"
    assert verify("k3y", header, body, now=1763766000 + 10)
    assert not verify("k3y", header, body + b" ", now=1763766000)
    assert not verify("other", header, body, now=1763766000)
    assert not verify("k3y", header, body, now=1763766000 + 301)  # replayed later
    assert verify("k3y", f"t=1763766000,v1={'0' * 64},v1={expected}", body, now=1763766000)  # rotation
    for bad in ("", "t=abc,v1=00", "v1=" + expected, "t=1763766000", "garbage"):
        assert not verify("k3y", bad, body, now=1763766000)
    with pytest.raises(ValueError):
        sign("", 1, body)


def test_event_matching_targets_and_allowed_callback_hosts() -> None:
    assert event_matches(["*"], "sms:received")
    assert event_matches(["sms:*"], "sms:delivered") and not event_matches(["sms:*"], "modem:online")
    assert event_matches(["sms:failed", "sms:delivered"], "sms:delivered")
    assert not event_matches(["sms:delivered"], "sms:delivered-ish")
    cfg = WebhooksConfig(subscription=(WebhookSubscription("http://a/h", ("sms:delivered",)),),
                         allowed_hosts=("crm.lan",))
    ev = SimpleNamespace(type="sms:delivered")
    assert targets(cfg, ev, SimpleNamespace(callback_url="http://crm.lan/cb")) == ["http://a/h", "http://crm.lan/cb"]
    assert targets(cfg, ev, SimpleNamespace(callback_url="http://evil/cb")) == ["http://a/h"]
    assert targets(cfg, SimpleNamespace(type="modem:unknown-kind"), SimpleNamespace(callback_url="http://crm.lan/cb")) == []
    assert not host_allowed("ftp://crm.lan/x", ["crm.lan"])
    assert not host_allowed("http://crm.lan.evil.com/x", ["crm.lan"])


def test_backoff_is_capped_exponential() -> None:
    assert [backoff_s(n, initial_s=5, max_s=600) for n in (1, 2, 3, 4, 8, 9, 100)] == [5, 10, 20, 40, 600, 600, 600]


def test_every_inbound_and_webhook_key_is_documented_in_the_example_config() -> None:
    import dataclasses
    from pathlib import Path

    from gsmgw.config import InboundConfig, load

    example = Path(__file__).parents[2] / "config" / "gsmgw.example.toml"
    text = example.read_text()
    section = text.split("[inbound]", 1)[1]
    for f in dataclasses.fields(InboundConfig):
        assert f"{f.name} =" in section, f.name
    for f in dataclasses.fields(WebhooksConfig):
        assert f.name in text, f.name
    assert load(example).inbound == InboundConfig()
