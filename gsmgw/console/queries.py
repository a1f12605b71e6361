"""Every store read and admin write the console makes, in one place.

Pages call these; these call the store's repositories through ``store.call`` (off
the event loop). No SQL here: the queries live in gsmgw.store (``store.views``
for the console's read models).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from gsmgw.console.deps import ConsoleDeps

REMOTE_FIELDS = ("id", "host", "port", "state", "state_reason", "enabled", "imei", "iccid", "imsi",
                 "operator", "model", "manufacturer", "own_number", "signal_csq", "registration")


def utc_midnight(now: dt.datetime | None = None) -> dt.datetime:
    now = now or dt.datetime.now(dt.UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


class Queries:
    def __init__(self, deps: ConsoleDeps) -> None:
        self.deps = deps
        self.store = deps.store

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await self.store.call(fn, *args, **kwargs)

    async def _read(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """A read for a page: beside the writer thread (``Store.call_read``), so the
        dashboard's counts never hold a send's commit back."""
        return await self.store.call_read(fn, *args, **kwargs)

    # --- modems -------------------------------------------------------------------

    async def modems(self) -> list[dict[str, Any]]:
        """This host's modems live, with what the store knows (registration), then
        the modems other hosts of a shared store last reported (read-only here)."""
        rows = {r["id"]: r for r in await self._read(self.store.modems.list_modems)}
        out = []
        for m in self.deps.modems():
            row = rows.get(m["id"], {})
            out.append({**m, "registration": row.get("registration", ""), "remote": False,
                        "updated_at": row.get("updated_at")})
        local = {m["id"] for m in out}
        for r in rows.values():
            if r["id"] in local or r["host"] == self.deps.host:
                continue
            view = {k: r.get(k) for k in REMOTE_FIELDS}
            view.update(remote=True, updated_at=r.get("updated_at"), busy=None, sent_parts=None,
                        failed_parts=None, last_error="", resting=None, limits=None, group="")
            out.append(view)
        return out

    # --- overview -----------------------------------------------------------------

    async def sim_counts_today(self) -> dict[str, dict[str, int]]:
        return dict(await self._read(self.store.views.sim_counts, utc_midnight()))

    async def queue(self) -> dict[str, Any]:
        return dict(await self._read(self.store.views.queue))

    async def oldest_due(self) -> dt.datetime | None:
        at: dt.datetime | None = await self._read(self.store.views.oldest_due)
        return at

    async def throughput(self, since: dt.datetime, bucket_s: int) -> list[tuple[str, int, int]]:
        return list(await self._read(self.store.views.throughput, since, bucket_s))

    async def delivery(self, since: dt.datetime) -> dict[str, Any]:
        return dict(await self._read(self.store.views.delivery, since))

    async def recent_errors(self, since: dt.datetime) -> list[dict[str, Any]]:
        return list(await self._read(self.store.views.recent_errors, since=since))

    async def unread(self) -> int:
        return int(await self._read(self.store.inbound.unread_count))

    # --- messages -------------------------------------------------------------------

    async def search(self, **filters: Any) -> list[dict[str, Any]]:
        return list(await self._read(self.store.messages.search, **filters))

    async def message(self, message_id: str) -> dict[str, Any] | None:
        row = await self._read(self.store.messages.get_message, message_id)
        return dict(row) if row is not None else None

    async def reports_of(self, message_id: str) -> list[dict[str, Any]]:
        rows = await self._read(self.store.reports.list_status_reports, message_id=message_id)
        return sorted(rows, key=lambda r: r["id"])  # in the order they came

    async def batch(self, batch_id: str, owner: str | None) -> dict[str, Any] | None:
        return await self._read(self.store.messages.batch_progress, batch_id, owner=owner)  # type: ignore[no-any-return]

    async def recent_batches(self, owner: str | None) -> list[dict[str, Any]]:
        return list(await self._read(self.store.views.recent_batches, owner=owner))

    # --- conversations ----------------------------------------------------------------

    async def conversations(self, owner: str | None) -> list[dict[str, Any]]:
        return list(await self._read(self.store.views.conversations, owner=owner))

    async def thread(self, number: str, owner: str | None) -> list[dict[str, Any]]:
        return list(await self._read(self.store.views.thread, number, owner=owner))

    async def mark_read(self, number: str) -> int:
        return int(await self._call(self.store.inbound.mark_read, number))

    async def opted_out(self, number: str) -> bool:
        return bool(await self._read(self.store.optouts.opted_out, [number]))

    # --- webhooks -----------------------------------------------------------------------

    async def deliveries(self, state: str | None, limit: int = 100) -> list[dict[str, Any]]:
        return list(await self._read(self.store.webhooks.list_webhook_deliveries, state=state, limit=limit))

    async def delivery_counts(self) -> dict[str, int]:
        return dict(await self._read(self.store.webhooks.webhook_counts))

    async def retry_failed_webhooks(self) -> int:
        return int(await self._call(self.store.webhooks.retry_failed_webhooks))

    # --- keys -------------------------------------------------------------------------

    async def key_active(self, key_id: str) -> bool:
        return bool(await self._read(self.store.keys.is_active, key_id))

    async def keys(self) -> list[dict[str, Any]]:
        return list(await self._read(self.store.keys.list_api_keys))

    async def create_key(self, name: str, scopes: list[str], rate_per_s: int, daily_quota: int, *,
                         actor: str = "console") -> tuple[str, str]:
        key_id, secret = await self._call(self.store.keys.create_api_key, name, scopes, rate_per_s=rate_per_s,
                                          daily_quota=daily_quota, actor=actor)
        return str(key_id), str(secret)

    async def revoke_key(self, key_id: str, *, actor: str = "console") -> bool:
        return bool(await self._call(self.store.keys.revoke_api_key, key_id, actor=actor))

    async def audit(self, actor: str, action: str, target: str, detail: dict[str, Any]) -> None:
        """An entry in the audit log (issue 21)."""
        await self._call(self.store.audit.record, actor, action, target, detail)


__all__ = ["Queries", "utc_midnight"]
