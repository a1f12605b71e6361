"""Inbound rules' matching and templates, from tables of inputs (pure)."""

from __future__ import annotations

import pytest

from gsmgw.config import ConfigError, RuleConfig, from_dict
from gsmgw.rules.match import fold, match, render, split_keyword

MSG = {"id": "01abc", "from": "+447700900123", "sim": "sim2", "text": "Infó! please call me",
       "received_at": "2026-11-28T12:00:00Z"}


@pytest.mark.parametrize(("rule", "matches"), [
    (RuleConfig(keyword="info", tag=("t",)), True),
    (RuleConfig(keyword="INFO", tag=("t",)), True),  # case and accents ignored, "!" too
    (RuleConfig(keyword="please", tag=("t",)), False),  # the first word only
    (RuleConfig(regex=r"call\s+me", tag=("t",)), True),
    (RuleConfig(regex=r"^call", tag=("t",)), False),
    (RuleConfig(sender="+447700900123", tag=("t",)), True),
    (RuleConfig(sender="+44 7700 900123", tag=("t",)), True),  # another rendering of the same number
    (RuleConfig(sender="+4477*", tag=("t",)), True),
    (RuleConfig(sender="+33*", tag=("t",)), False),
    (RuleConfig(sim="sim2", tag=("t",)), True),
    (RuleConfig(sim="sim1", tag=("t",)), False),
    (RuleConfig(sim="sim2", keyword="info", sender="+44*", regex="call", tag=("t",)), True),
    (RuleConfig(sim="sim2", keyword="info", sender="+33*", regex="call", tag=("t",)), False),  # all must hold
    (RuleConfig(tag=("t",)), True),  # no condition: every message
])
def test_conditions(rule: RuleConfig, matches: bool) -> None:
    assert (match(rule, MSG) is not None) is matches


def test_variables_and_regex_groups() -> None:
    v = match(RuleConfig(regex=r"order (?P<order>\d+)", reply="x"), {**MSG, "text": "Status order 4711?"})
    assert v is not None and v["order"] == "4711" and v["keyword"] == "status" and v["rest"] == "order 4711?"
    assert v["sender"] == "+447700900123" and v["sim"] == "sim2" and v["id"] == "01abc"


def test_keyword_folding() -> None:
    assert fold("  ARRÊT ! ") == "arret"
    assert split_keyword("  Héllo,   world  ") == ("hello", "world")
    assert split_keyword("") == ("", "")


def test_render_is_not_str_format() -> None:
    v = {"sender": "+1555", "text": "{sender.__class__}"}
    assert render("Hi {sender}, you said: {text}", v) == "Hi +1555, you said: {sender.__class__}"
    assert render("{sender.__class__.__mro__} {unknown} {{literal}} {0}", v) == \
        "{sender.__class__.__mro__} {unknown} {literal} {0}"


@pytest.mark.parametrize(("rule", "error"), [
    ({"keyword": "two words", "tag": ["x"]}, "rules[0].keyword"),
    ({"regex": "(", "tag": ["x"]}, "rules[0].regex"),
    ({"keyword": "x"}, "give an action"),
    ({"command": ["sh", "-c", "x"]}, "rules[0].command[0]: expected an absolute path"),
    ({"mqtt_topic": "a/#"}, "rules[0].mqtt_topic"),
    ({"webhook": "ftp://x"}, "rules[0].webhook"),
    ({"email": ["not-an-address"]}, "rules[0].email[0]"),
    ({"reply": "x", "reply_limit": 0}, "rules[0].reply_limit"),
    ({"tag": ["has space"]}, "rules[0].tag[0]"),
])
def test_config_errors_name_the_key(rule: dict[str, object], error: str) -> None:
    with pytest.raises(ConfigError, match=error.replace("[", r"\[").replace("]", r"\]")):
        from_dict({"rules": [rule]})


def test_duplicate_rule_names_are_refused() -> None:
    with pytest.raises(ConfigError, match="duplicate rule name"):
        from_dict({"rules": [{"name": "a", "tag": ["x"]}, {"name": "a", "tag": ["y"]}]})
