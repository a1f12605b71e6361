"""The admin console: a browser door to the gateway at /ui/ on the API port.

Server-rendered pages (aiohttp + Jinja2, autoescaped), htmx and uPlot vendored
under ``static/``; sign-in with an API key into a server-side session. It reads
through the store's repositories and sends through the intake service; it
imports no other door.
"""

from gsmgw.console.app import create_console, mount
from gsmgw.console.deps import ConsoleDeps

__all__ = ["ConsoleDeps", "create_console", "mount"]
