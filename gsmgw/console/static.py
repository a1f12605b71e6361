"""The console's static files: read from the package once, served from memory,
gzip-compressed ahead of time, under a URL that changes when a file does (so a
browser may cache them for a year)."""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from importlib import resources

# name -> content type. Everything the browser loads; nothing comes from elsewhere.
ASSETS = {
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "vendor/htmx-2.0.11.min.js": "text/javascript; charset=utf-8",
    "vendor/uPlot-1.6.32.iife.min.js": "text/javascript; charset=utf-8",
    "vendor/uPlot-1.6.32.min.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}


@dataclass(frozen=True, slots=True)
class Asset:
    name: str
    content_type: str
    body: bytes
    gzipped: bytes


class Assets:
    def __init__(self) -> None:
        root = resources.files("gsmgw.console").joinpath("static")
        self.files: dict[str, Asset] = {}
        h = hashlib.sha256()
        for name, ctype in ASSETS.items():
            body = root.joinpath(name).read_bytes()
            # mtime=0: the same bytes on every start (and every host).
            self.files[name] = Asset(name, ctype, body, gzip.compress(body, compresslevel=9, mtime=0))
            h.update(name.encode() + b"\0" + body)
        # Part of every asset URL: a new release or an edited file gets a new URL.
        self.tag = h.hexdigest()[:12]

    def get(self, name: str) -> Asset | None:
        return self.files.get(name)

    def url(self, prefix: str, name: str) -> str:
        if name not in self.files:
            raise KeyError(f"no console asset {name!r}")
        return f"{prefix}static/{self.tag}/{name}"

    def compressed_total(self, names: list[str] | None = None) -> int:
        return sum(len(self.files[n].gzipped) for n in (names or list(self.files)))


__all__ = ["ASSETS", "Asset", "Assets"]
