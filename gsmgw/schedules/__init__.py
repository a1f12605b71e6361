"""SIM care and recurring messages (issue 20 parts 2-3).

``keepalive.KeepAlive`` keeps prepaid SIMs active and raises expiry alerts;
``service.Scheduler`` queues the occurrences of recurring schedules through the
intake service; ``rules`` is the pure part (RRULE/cron in a time zone, the missed
policy). The daemon runs both with the real clock; tests inject their own.
"""

from gsmgw.schedules.keepalive import KeepAlive, settings_for
from gsmgw.schedules.service import Scheduler, ScheduleSpec, occurrence_key

__all__ = ["KeepAlive", "ScheduleSpec", "Scheduler", "occurrence_key", "settings_for"]
