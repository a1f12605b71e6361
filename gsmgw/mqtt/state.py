"""What the retained state topics say (pure): one JSON object per SIM and one for the gateway."""

from __future__ import annotations

from typing import Any

# AT+CSQ: 0..31 (-113 dBm + 2 dBm a step); 99 = not known.
CSQ_UNKNOWN = 99


def csq_dbm(csq: Any) -> int | None:
    if isinstance(csq, int) and not isinstance(csq, bool) and 0 <= csq <= 31:
        return -113 + 2 * csq
    return None


def csq_percent(csq: Any) -> int | None:
    if isinstance(csq, int) and not isinstance(csq, bool) and 0 <= csq <= 31:
        return round(csq * 100 / 31)
    return None


def sim_state(modem: dict[str, Any], *, stored: dict[str, Any] | None, today: dict[str, int] | None,
              balance: dict[str, Any] | None, updated_at: str) -> dict[str, Any]:
    """One SIM: ``modem`` from the pool's snapshot, ``stored`` its row in the store
    (registration), ``today`` parts sent / messages failed since UTC midnight."""
    stored = stored or {}
    csq = modem.get("signal_csq")
    if csq is None:
        csq = stored.get("signal_csq")
    today = today or {}
    balance = balance or {}
    return {
        "id": modem["id"],
        "state": modem.get("state"),
        "state_reason": modem.get("state_reason"),
        "enabled": modem.get("enabled"),
        "busy": modem.get("busy"),
        "signal_csq": csq,
        "signal_dbm": csq_dbm(csq),
        "signal_percent": csq_percent(csq),
        "operator": modem.get("operator") or stored.get("operator"),
        "registration": stored.get("registration"),
        "group": modem.get("group"),
        "own_number": modem.get("own_number"),
        "imei": modem.get("imei"),
        "iccid": modem.get("iccid"),
        "model": modem.get("model"),
        "manufacturer": modem.get("manufacturer"),
        # Counters since the gateway started (parts), and today's from the store.
        "sent_parts": modem.get("sent_parts"),
        "failed_parts": modem.get("failed_parts"),
        "sent_today": int(today.get("sent", 0)),
        "failed_today": int(today.get("failed", 0)),
        "storage_used": modem.get("storage_used"),
        "storage_total": modem.get("storage_total"),
        "balance": balance.get("value"),
        "balance_text": balance.get("text"),
        "balance_checked_at": balance.get("checked_at"),
        "last_error": modem.get("last_error"),
        "updated_at": updated_at,
    }


def gateway_state(*, host: str, version: str, readiness: Any, queue: dict[str, Any] | None,
                  sims: list[dict[str, Any]], commands: bool, updated_at: str) -> dict[str, Any]:
    queue = queue or {}
    return {
        "host": host,
        "version": version,
        "status": getattr(readiness, "status", None),
        "reasons": list(getattr(readiness, "reasons", ()) or ()),
        "queue_depth": queue.get("depth"),
        "queue_due": queue.get("due"),
        "queue_scheduled": queue.get("scheduled"),
        "sims_total": len(sims),
        "sims_ready": sum(1 for s in sims if s.get("state") == "ready" and s.get("enabled")),
        "sent_today": sum(int(s.get("sent_today") or 0) for s in sims),
        "failed_today": sum(int(s.get("failed_today") or 0) for s in sims),
        "commands": commands,
        "updated_at": updated_at,
    }
