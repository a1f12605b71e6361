"""Routing rules: which SIM group a number should go out from (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from gsmgw.config import RouteRule


@dataclass(frozen=True, slots=True)
class Route:
    group: str | None
    # None = strict (only that group, ever); else seconds before any SIM may take it.
    fallback_after_s: float | None


class Router:
    def __init__(self, rules: tuple[RouteRule, ...]) -> None:
        self._rules = [(r, re.compile(r.regex) if r.regex else None) for r in rules]

    def route(self, number: str) -> Route:
        for rule, rx in self._rules:
            hit = rx.fullmatch(number) is not None if rx else number.startswith(rule.prefix)
            if hit:
                return Route(rule.group, rule.fallback_after_s or None)
        return Route(None, None)
