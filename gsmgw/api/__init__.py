"""HTTP API (aiohttp)."""

from gsmgw.api.app import Services, create_app

__all__ = ["Services", "create_app"]
