"""What the API needs from the rest of the gateway (wired by gsmgw.daemon), as typed app keys."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from gsmgw.config import Config
from gsmgw.health import Readiness, ReadinessTracker, evaluate
from gsmgw.intake import IntakeService
from gsmgw.store import Store


@dataclasses.dataclass
class Services:
    """What the API needs from the rest of the gateway; wired by gsmgw.daemon."""

    cfg: Config
    store: Store
    notify_work: Callable[[], None]
    modems: Callable[[], list[dict[str, Any]]]
    set_modem_enabled: Callable[[str, bool], bool]
    started_at: float = dataclasses.field(default_factory=time.time)
    sent_total: Callable[[], int] = lambda: 0
    # number -> (SIM group or None, fallback seconds or None for strict)
    route: Callable[[str], tuple[str | None, float | None]] = lambda _n: (None, None)
    host: str = "local"
    # The one intake path; create_app builds one from the fields above when None.
    intake: IntakeService | None = None
    # The gateway's readiness now (store and modems; gsmgw.health). When None, the
    # modems alone are judged (an app built without a gateway, in tests).
    readiness: Callable[[], Readiness] | None = None
    # SIM care per modem and cost sums (Pool.care_status; issue 20); None = not shown.
    sim_care: Callable[[], Awaitable[dict[str, Any]]] | None = None
    # Wakes the campaign runner (gsmgw.campaigns) after a start or resume.
    wake_campaigns: Callable[[], None] = lambda: None
    _tracker: ReadinessTracker = dataclasses.field(default_factory=lambda: ReadinessTracker(time.monotonic()))

    def current_readiness(self) -> Readiness:
        if self.readiness is not None:
            return self.readiness()
        views, none_ready_s = self._tracker.update(self.modems(), time.monotonic())
        return evaluate(modems=views, none_ready_s=none_ready_s, grace_s=self.cfg.health.modem_grace_s)

    def make_intake(self) -> IntakeService:
        if self.intake is None:
            self.intake = IntakeService(self.store, lambda: self.cfg, notify_work=self.notify_work,
                                        route=self.route, local_modems=self.modems, host=self.host)
        return self.intake


SERVICES = web.AppKey("services", Services)
INTAKE = web.AppKey("intake", IntakeService)
