"""The compat layers' event follower: where it starts, and gaps in event ids."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from gsmgw.api.event_follower import EventFollower, latest_event_id


class FakeEvents:
    """Just what the follower uses of the Store: ``call`` and the events repository's
    ``list_events`` and ``max_id`` (the fake is its own ``events``)."""

    def __init__(self, ids: list[int], *, is_sqlite: bool = True) -> None:
        self.events = self
        self.ids = ids
        self.is_sqlite = is_sqlite
        self.calls = 0
        self.ages_s: dict[int, float] = {}

    async def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return fn(*args, **kwargs)

    def max_id(self) -> int:
        return max(self.ids, default=0)

    def list_events(self, *, after_id: int = 0, type_: str | None = None, limit: int = 100,
                    with_door: bool = False) -> list[dict[str, Any]]:
        now = dt.datetime.now(dt.UTC)
        return [{"id": i, "type": "sms:sent", "message_id": None, "payload": "{}",
                 "created_at": now - dt.timedelta(seconds=self.ages_s.get(i, 60.0))}
                for i in sorted(self.ids) if i > after_id][:limit]


@pytest.mark.parametrize("ids", [[], [1], [1, 2, 3], list(range(1, 1001)), [5, 9, 1_000_003]])
async def test_latest_event_id_finds_the_max_in_few_queries(ids: list[int]) -> None:
    store = FakeEvents(ids)
    assert await latest_event_id(store) == max(ids, default=0)
    assert store.calls <= 2 * 21 + 2  # O(log n), not a scan


async def test_events_are_handed_on_in_order_and_a_young_gap_is_waited_for() -> None:
    store = FakeEvents([1, 2, 4], is_sqlite=False)
    store.ages_s[4] = 0.0  # id 3 may still commit (PostgreSQL)
    f = EventFollower(store)
    seen: list[int] = []

    async def handler(ev: dict[str, Any]) -> None:
        seen.append(ev["id"])

    f.subscribe(handler)
    await f.run_once()
    assert seen == [1, 2] and f.cursor == 2
    store.ids.append(3)  # the late commit arrives
    await f.run_once()
    assert seen == [1, 2, 3, 4]
    store.ids.append(7)  # a gap that never fills is stepped over once it is old
    store.ages_s[7] = 60.0
    await f.run_once()
    assert seen[-1] == 7
