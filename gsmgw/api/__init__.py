"""HTTP API (aiohttp)."""

from gsmgw.api.app import create_app
from gsmgw.api.context import Services

__all__ = ["Services", "create_app"]
