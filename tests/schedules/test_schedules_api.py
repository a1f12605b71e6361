"""/api/v1/schedules against a running gateway: bad rules, time zones and bodies get a
422 with a clear error and store nothing; scopes and own-key objects as for messages;
pause, resume, delete; the CLI against the same gateway."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
import sys
from pathlib import Path

import pytest

from gsmgw.config import SchedulesConfig
from tests.helpers import make_config, running_gateway
from tests.schedules.helpers import FakeClock, utc

GOOD = {"rrule": "FREQ=DAILY;BYHOUR=9;BYMINUTE=0", "timezone": "Europe/Berlin", "to": "+447700900123",
        "text": "good morning"}


def _cfg(tmp_path: Path):  # type: ignore[no-untyped-def]
    return dataclasses.replace(make_config(tmp_path), schedules=SchedulesConfig(poll_interval_s=3600.0))


async def test_bad_rules_zones_and_bodies_are_422_with_a_clear_error(tmp_path: Path) -> None:
    async with running_gateway(_cfg(tmp_path)) as (gw, c):
        gw.scheduler.clock = FakeClock(utc(2026, 11, 28, 12))
        cases = [
            ({**GOOD, "rrule": "FREQ=DAILY;BYHOUR=25"}, "invalid_rrule", "hour must be in 0..23"),
            ({**GOOD, "rrule": "every day at nine"}, "invalid_rrule", "needs FREQ"),
            ({**GOOD, "rrule": "FREQ=SECONDLY"}, "invalid_rrule", "at most once a minute"),
            ({**GOOD, "rrule": "FREQ=MINUTELY;BYSECOND=0,30"}, "invalid_rrule", "less than a minute apart"),
            ({**GOOD, "rrule": "FREQ=DAILY;INTERVAL=0"}, "invalid_rrule", "INTERVAL"),
            # Matches no date: refused (evaluated off the event loop, within a time limit).
            ({**GOOD, "rrule": "FREQ=MINUTELY;BYMONTH=2;BYMONTHDAY=30"}, "invalid_rrule", ""),
            ({**GOOD, "rrule": "FREQ=DAILY;UNTIL=20200101T000000Z"}, "invalid_rrule", "no occurrence after now"),
            ({**GOOD, "rrule": "FREQ=DAILY;UNTIL=20300101T000000"}, "invalid_rrule", "UTC"),
            ({**GOOD, "rrule": "FREQ=DAILY;DTSTART=20260101T090000"}, "invalid_rrule", "start"),
            ({**GOOD, "rrule": None, "cron": "61 * * * *"}, "invalid_cron", "not a valid cron"),
            ({**GOOD, "rrule": None, "cron": "* * *"}, "invalid_cron", "5 fields"),
            ({**GOOD, "cron": "0 9 * * *"}, "invalid_rrule", "exactly one of rrule"),
            ({k: v for k, v in GOOD.items() if k != "rrule"}, "invalid_rrule", "exactly one of rrule"),
            ({**GOOD, "timezone": "Mars/Olympus_Mons"}, "invalid_timezone", "unknown time zone"),
            ({**GOOD, "timezone": "../../etc/passwd"}, "invalid_timezone", "IANA"),
            ({**GOOD, "timezone": 7}, "invalid_timezone", "IANA"),
            ({**GOOD, "missed": "twice"}, "invalid_field", "missed"),
            ({**GOOD, "to": "12"}, "invalid_number", ""),
            ({**GOOD, "text": None, "template": "hi {name}"}, "missing_variable", "{name}"),
            ({**GOOD, "sim": "sim9"}, "unknown_sim", "sim9"),
            ({**GOOD, "start": "tomorrow"}, "invalid_time", ""),
            ({**GOOD, "colour": "red"}, "unknown_field", "colour"),
        ]
        for body, code, words in cases:
            body = {k: v for k, v in body.items() if v is not None}
            status, reply = await c.request("POST", "/api/v1/schedules", json=body)
            assert status == 422, (body, reply)
            assert reply["error"]["code"] == code, (body, reply)
            assert words in reply["error"]["message"], (body, reply)
        _, page = await c.request("GET", "/api/v1/schedules")
        assert page["items"] == []  # nothing stored


@pytest.mark.slow  # seven CLI processes: python start-up under load
async def test_scopes_own_key_objects_pause_resume_delete_and_cli(tmp_path: Path) -> None:
    clock = FakeClock(utc(2026, 11, 28, 12))
    async with running_gateway(_cfg(tmp_path)) as (gw, c):
        gw.scheduler.clock = clock
        _, reader = await gw.store.call(gw.store.keys.create_api_key, "ro", ["read"])
        _, other = await gw.store.call(gw.store.keys.create_api_key, "crm", ["send", "read"])
        status, _ = await c.request("POST", "/api/v1/schedules", json=GOOD, key=reader)
        assert status == 403
        status, _ = await c.request("POST", "/api/v1/schedules", json=GOOD, key=None)
        assert status == 401
        status, mine = await c.request("POST", "/api/v1/schedules", json={**GOOD, "name": "admin's"})
        assert status == 201, mine
        assert mine["next_run_local"] == "2026-11-29T09:00:00+01:00" and mine["rrule"] == GOOD["rrule"]
        status, theirs = await c.request("POST", "/api/v1/schedules", key=other, json={
            "cron": "30 8 * * 1-5", "timezone": "America/New_York", "to": ["+12025550123"], "text": "standup",
            "missed": "skip"})
        assert status == 201, theirs
        assert theirs["next_run_local"] == "2026-11-30T08:30:00-05:00"
        # Own objects: the other key sees its own only; admin sees both.
        _, page = await c.request("GET", "/api/v1/schedules", key=other)
        assert [s["id"] for s in page["items"]] == [theirs["id"]]
        _, page = await c.request("GET", "/api/v1/schedules")
        assert {s["id"] for s in page["items"]} == {mine["id"], theirs["id"]}
        for method, path in (("GET", ""), ("POST", "/pause"), ("POST", "/resume"), ("DELETE", "")):
            status, _ = await c.request(method, f"/api/v1/schedules/{mine['id']}{path}", key=other)
            assert status == 404, (method, path)
        status, _ = await c.request("POST", f"/api/v1/schedules/{theirs['id']}/pause", key=reader)
        assert status == 403
        status, _ = await c.request("GET", "/api/v1/schedules/nope")
        assert status == 404
        status, _ = await c.request("GET", "/api/v1/schedules?limit=0")
        assert status == 422
        status, _ = await c.request("GET", "/api/v1/schedules?colour=red")
        assert status == 422
        # Pause: not due while paused; resume: what passed meanwhile is not sent.
        status, paused = await c.request("POST", f"/api/v1/schedules/{mine['id']}/pause")
        assert status == 200 and paused["paused"] and paused["next_run_at"] is None
        clock.now = utc(2026, 11, 30, 12)  # two 09:00 went by
        assert await gw.scheduler.tick() == 0
        status, resumed = await c.request("POST", f"/api/v1/schedules/{mine['id']}/resume")
        assert status == 200 and not resumed["paused"] and resumed["skipped"] == 2
        assert resumed["next_run_local"] == "2026-12-01T09:00:00+01:00"
        assert await gw.scheduler.tick() == 0
        status, one = await c.request("GET", f"/api/v1/schedules/{mine['id']}")
        assert one["upcoming_local"][:2] == ["2026-12-01T09:00:00+01:00", "2026-12-02T09:00:00+01:00"]
        # The CLI, through the API with the admin key.
        env = {**os.environ, "GSMGW_URL": gw.base_url, "GSMGW_API_KEY": c.key}
        env.pop("GSMGW_CONFIG", None)

        async def cli(*args: str) -> tuple[int, str, str]:
            p = await asyncio.create_subprocess_exec(sys.executable, "-m", "gsmgw", "schedules", *args, env=env,
                                                     stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(p.communicate(), 30)
            return p.returncode or 0, out.decode(), err.decode()

        rc, out, err = await cli("list")
        assert rc == 0 and mine["id"] in out and theirs["id"] in out, err
        rc, out, err = await cli("create", "--cron", "0 7 * * *", "--timezone", "Europe/Berlin", "--to",
                                 "+447700900124", "--text", "from the CLI", "--missed", "skip")
        assert rc == 0, err
        assert "next run 2026-12-01T07:00:00+01:00" in out
        rc, out, err = await cli("create", "--rrule", "FREQ=DAILY;BYHOUR=99", "--to", "+447700900124",
                                 "--text", "x")
        assert rc == 1 and "invalid_rrule" in err and "hour must be in 0..23" in err
        rc, out, err = await cli("pause", theirs["id"])
        assert rc == 0 and "paused" in out
        rc, out, err = await cli("show", theirs["id"])
        assert rc == 0 and '"paused": true' in out
        rc, out, err = await cli("delete", theirs["id"])
        assert rc == 0
        rc, out, err = await cli("delete", theirs["id"])
        assert rc == 1 and "not_found" in err
        status, _ = await c.request("DELETE", f"/api/v1/schedules/{mine['id']}")
        assert status == 200
        _, page = await c.request("GET", "/api/v1/schedules")
        assert len(page["items"]) == 1  # the CLI's
        assert dt.datetime.fromisoformat(page["items"][0]["created_at"]) == clock.now
