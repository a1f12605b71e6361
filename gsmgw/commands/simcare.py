"""``gsmgw status`` lines for SIM care (issue 20): caps used/left, the next paced
send, the warm-up day and cost, from ``/api/v1/status``."""

from __future__ import annotations

from typing import Any


def _money(micros: int, currency: str) -> str:
    return f"{micros / 1_000_000:.4f}{(' ' + currency) if currency else ''}"


def care_lines(modem: dict[str, Any], cost: dict[str, Any] | None) -> list[str]:
    """What ``gsmgw status`` prints under a modem (nothing when SIM care is off)."""
    care = modem.get("care")
    if not care:
        return []
    bits = []
    for name, cap in (care.get("caps") or {}).items():
        if cap:
            bits.append(f"{name} {cap['used']}/{cap['cap']} ({cap['left']} left)")
    pace = care.get("pace")
    if pace:
        nxt = pace.get("next_send_at")
        bits.append(f"pace {pace['min_s']:g}-{pace['max_s']:g} s" + (f", next {nxt}" if nxt else ", ready"))
    warm = care.get("warmup")
    if warm:
        bits.append(f"warm-up day {warm['day']}/{warm['days']} (cap {warm['cap_today']})")
    if care.get("cost") and cost:
        cur = cost.get("currency") or ""
        bits.append(f"cost today {_money(care['cost']['today_micros'], cur)}, "
                    f"month {_money(care['cost']['month_micros'], cur)}")
    return [f"  {'':<12} care: " + "; ".join(bits)] if bits else []


def cost_lines(cost: dict[str, Any] | None) -> list[str]:
    if not cost or not cost.get("today"):
        return []
    cur = cost.get("currency") or ""
    today, month = cost["today"], cost["month"]
    keys = ", ".join(f"{k or '-'} {_money(v, cur)}" for k, v in sorted(today["by_key"].items()))
    return [f"  cost today {_money(today['total_micros'], cur)} (by key: {keys or 'none'}); "
            f"this month {_money(month['total_micros'], cur)}"]


__all__ = ["care_lines", "cost_lines"]
