"""Inbound rules: matching and templates (pure: no I/O).

A rule matches when every condition it gives holds: the sender (an E.164 number,
matched in any rendering, or a glob such as ``+4477*``), the receiving SIM, the
keyword (the text's first word, case- and accent-insensitive, punctuation ignored)
and the regex (``re.search``). What matched becomes template variables.
"""

from __future__ import annotations

import fnmatch
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from gsmgw.config import RuleConfig
from gsmgw.numbers import same_number

_GLOB = re.compile(r"[*?\[]")
_PUNCT = re.compile(r"[^\w\s]|_", re.UNICODE)
_VAR = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]{0,39})\}")
_FIRST = re.compile(r"\s*(\S+)\s*(.*)\Z", re.DOTALL)
MAX_REGEX_TEXT = 2000  # characters a rule's regex looks at (an SMS is at most 255 parts anyway)


def fold(text: str) -> str:
    """Case-, accent- and punctuation-insensitive: "Infó!" -> "info"."""
    s = unicodedata.normalize("NFKD", text.casefold())
    s = "".join(c for c in s if not unicodedata.combining(c))
    return " ".join(_PUNCT.sub(" ", s).split())


def split_keyword(text: str) -> tuple[str, str]:
    """(first word folded, the rest of the text as written)."""
    m = _FIRST.match(text)
    if m is None:
        return "", ""
    # "Info!" folds to "info"; "e-mail" to "e mail": its first piece is the keyword.
    word = fold(m.group(1))
    return word.split(" ")[0] if word else "", m.group(2).strip()


def sender_matches(pattern: str, sender: str, region: str | None = None) -> bool:
    if _GLOB.search(pattern):
        return fnmatch.fnmatchcase(sender.casefold(), pattern.casefold())
    if pattern.casefold() == sender.casefold():
        return True
    return pattern.startswith("+") and same_number(pattern, sender, region)


def match(rule: RuleConfig, msg: Mapping[str, Any], region: str | None = None) -> dict[str, str] | None:
    """The template variables if ``rule`` matches the inbound message ``msg`` (the
    ``sms:received`` payload: id, from, sim, text, received_at ...), else None."""
    sender, sim, text = str(msg.get("from") or ""), str(msg.get("sim") or ""), str(msg.get("text") or "")
    if rule.sim and rule.sim != sim:
        return None
    if rule.sender and not sender_matches(rule.sender, sender, region):
        return None
    keyword, rest = split_keyword(text)
    if rule.keyword and keyword != fold(rule.keyword):
        return None
    groups: dict[str, str] = {}
    if rule.regex:
        m = re.search(rule.regex, text[:MAX_REGEX_TEXT])
        if m is None:
            return None
        groups = {k: v for k, v in m.groupdict().items() if v is not None}
    return {
        **groups,
        "sender": sender, "sim": sim, "text": text, "id": str(msg.get("id") or ""),
        "received_at": str(msg.get("received_at") or ""), "keyword": keyword, "rest": rest,
    }


def render(template: str, variables: Mapping[str, str]) -> str:
    """``{name}`` → its value; ``{{`` / ``}}`` → a brace; an unknown ``{name}`` stays as is.
    (Not ``str.format``: no attribute or index lookups from a template.)"""

    def sub(m: re.Match[str]) -> str:
        whole = m.group(0)
        if whole == "{{":
            return "{"
        if whole == "}}":
            return "}"
        return variables.get(m.group(1), whole)

    return _VAR.sub(sub, template)


__all__ = ["fold", "match", "render", "sender_matches", "split_keyword"]
