"""API routes for the inbox, opt-out list, USSD and webhooks."""

from __future__ import annotations

from aiohttp import web


def add_routes(app: web.Application) -> None:
    return None
