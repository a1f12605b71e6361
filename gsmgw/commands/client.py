"""Talking to a running gateway from the command line: where it is (flags, then
GSMGW_URL / GSMGW_API_KEY, then the config), and one JSON API call. Used by the core
commands in cli.py and by the feature commands in gsmgw/commands/."""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from gsmgw.config import Config, ConfigError, load, parse_listen

DEFAULT_CONFIG = "/etc/gsmgw/gsmgw.toml"


class CliError(Exception):
    """A refusal of the command line: printed as one line, exit status ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def client_config(args: argparse.Namespace) -> Config | None:
    """The config that tells send/status where the gateway is and which key to use.

    ``--config`` or ``GSMGW_CONFIG`` must be readable; the system default
    (/etc/gsmgw/gsmgw.toml) is used only if this user can read it.
    """
    if args.config:
        return load(args.config)
    if os.access(DEFAULT_CONFIG, os.R_OK):
        try:
            return load(DEFAULT_CONFIG)
        except ConfigError:
            return None
    return None


def client_target(args: argparse.Namespace) -> tuple[str, str]:
    """(base URL, API key): the flags, then GSMGW_URL/GSMGW_API_KEY, then the config."""
    url = args.url or os.environ.get("GSMGW_URL")
    key = args.api_key or os.environ.get("GSMGW_API_KEY")
    cfg = client_config(args) if not (url and key) else None
    if not url:
        url = client_url(cfg) if cfg else "http://127.0.0.1:8080"
    if not key and cfg is not None and cfg.client.api_key_file:
        try:
            key = Path(cfg.client.api_key_file).read_text().strip()
        except OSError as exc:
            raise CliError(f"{cfg.source}: client.api_key_file: cannot read {cfg.client.api_key_file}: "
                           f"{exc.strerror or exc}") from None
    if not key:
        raise CliError("no API key: give --api-key, set GSMGW_API_KEY, or point GSMGW_CONFIG at a config "
                       "with [client] api_key_file (gsmgw demo writes one)", code=2)
    return url, key


def client_url(cfg: Config) -> str:
    """The URL of the gateway a config describes: [client] url, else from [api] listen."""
    if cfg.client.url:
        return cfg.client.url.rstrip("/")
    host, port = parse_listen(cfg.api.listen)
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    scheme = "https" if cfg.api.tls_cert_file else "http"
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"


def api_call(args: argparse.Namespace, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    url, key = client_target(args)
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url.rstrip("/") + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=args.timeout_s) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"null")
        except json.JSONDecodeError:
            return exc.code, {"error": {"code": "http", "message": str(exc)}}
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CliError(f"cannot reach {url}: {reason} (is the gateway running? --url or GSMGW_URL "
                       "or GSMGW_CONFIG say where)") from None
