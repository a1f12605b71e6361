"""aiohttp application factory: wires the doors of the HTTP API to the gateway's services.

``gsmgw.api`` is the only package that imports aiohttp.web. Modules by concern:
``context`` (what the API is given), ``errors`` (JSON errors), ``auth`` (keys and
scopes), ``views`` (JSON of stored rows), ``v1`` and ``inbound`` (the native API),
``compat_android`` and ``compat_kannel`` (other products' APIs), ``openapi``,
``metrics`` and ``event_follower`` (callbacks of the compatible APIs).
"""

from __future__ import annotations

from aiohttp import web

from gsmgw.api import campaigns, compat_android, compat_kannel, inbound, openapi, v1
from gsmgw.api import reports as reports_api
from gsmgw.api import schedules as schedules_api
from gsmgw.api.auth import auth_middleware
from gsmgw.api.context import INTAKE, SERVICES, Services
from gsmgw.api.errors import errors_middleware, unknown_query_middleware
from gsmgw.api.metrics import METRICS, Metrics, metrics_middleware


def create_app(services: Services) -> web.Application:
    app = web.Application(
        middlewares=[metrics_middleware, errors_middleware, auth_middleware, unknown_query_middleware],
        client_max_size=services.cfg.api.max_body_bytes,
    )
    app[SERVICES] = services
    app[METRICS] = metrics = Metrics(services.modems)
    app[INTAKE] = intake = services.make_intake()
    intake.add_observer(metrics)
    v1.add_routes(app)
    inbound.add_routes(app)
    openapi.add_routes(app)
    compat_android.add_routes(app)
    compat_kannel.add_routes(app)
    schedules_api.add_routes(app)  # recurring schedules, SIM keep-alive (issue 20)
    campaigns.add_routes(app)  # contacts, groups, campaigns (issue 21)
    reports_api.add_routes(app)  # issue 21: reports, erasure, audit
    return app


__all__ = ["SERVICES", "Services", "create_app"]
