"""Command line: ``gsmgw run|demo|send|status|keys|pdu|fake-modem|probe``."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib
import json
import logging
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from gsmgw import __version__
from gsmgw.config import Config, ConfigError, load
from gsmgw.logs import setup_logging

log = logging.getLogger("gsmgw")

# Subcommands that live next to their feature (each module has register(sub)).
COMMAND_MODULES = ("gsmgw.commands.pdu", "gsmgw.commands.fake_modem", "gsmgw.commands.probe",
                   "gsmgw.commands.doctor", "gsmgw.commands.smpp")

DEFAULT_CONFIG = "/etc/gsmgw/gsmgw.toml"


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "gsmgw" / "demo"


# --- run ------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    cfg = load(args.config)
    setup_logging(args.log_level or cfg.logging.level, args.log_format or cfg.logging.format)
    if not cfg.modem:
        log.warning("no [[modem]] in %s: the API will queue messages but nothing will send them", cfg.source)
    from gsmgw.daemon import Gateway, install_signal_handlers, serve_reloadable

    async def main() -> None:
        stop = asyncio.Event()
        install_signal_handlers(stop)
        gw = Gateway(cfg)
        # SIGHUP re-reads --config (systemctl reload gsmgw); a bad file is refused.
        await serve_reloadable(gw, stop, args.config)

    asyncio.run(main())
    return 0


# --- demo -------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    setup_logging(args.log_level or "info", args.log_format or "text")
    from gsmgw.demo import run_demo

    return asyncio.run(
        run_demo(
            modems=args.modems,
            host=args.host,
            port=args.port,
            state_dir=Path(args.state_dir) if args.state_dir else default_state_dir(),
            api_key=args.api_key,
            latency_s=args.latency_s,
        )
    )


# --- keys -------------------------------------------------------------------------


def _open_store(cfg: Config) -> Any:
    from gsmgw.store import Store

    store = Store(cfg.store.url)
    if cfg.store.migrate_on_start:
        store.migrate()
    return store


def cmd_keys(args: argparse.Namespace) -> int:
    cfg = load(args.config)
    store = _open_store(cfg)
    try:
        if args.keys_cmd == "create":
            scopes = [s.strip() for s in args.scope.split(",") if s.strip()]
            try:
                _key_id, key = store.keys.create_api_key(
                    args.name, scopes, rate_per_s=args.rate_per_s, daily_quota=args.daily_quota
                )
            except ValueError as exc:
                print(f"gsmgw keys create: {exc}", file=sys.stderr)
                return 2
            print(key)
        elif args.keys_cmd == "list":
            for k in store.keys.list_api_keys():
                state = "revoked" if k["revoked_at"] else "active"
                print(f"{k['id']}\t{k['name']}\t{','.join(k['scopes'])}\t{state}")
        elif args.keys_cmd == "revoke":
            if not store.keys.revoke_api_key(args.key_id):
                print(f"gsmgw keys revoke: no active key {args.key_id!r}", file=sys.stderr)
                return 1
            print(f"revoked {args.key_id}")
    finally:
        store.close()
    return 0


def cmd_store(args: argparse.Namespace) -> int:
    from gsmgw.errors import StoreError

    if args.store_cmd == "migrate":
        from gsmgw.store import Store

        store = Store(args.url)
        try:
            store.migrate()
        finally:
            store.close()
        print("migrated to the current schema")
        return 0
    from gsmgw.store.copy import copy_store

    try:
        counts = copy_store(args.src, args.dst, force=args.force)
    except StoreError as exc:
        print(f"gsmgw store copy: {exc}", file=sys.stderr)
        return 1
    for name, n in counts.items():
        print(f"{name:<24} {n}")
    return 0


# --- HTTP client commands ------------------------------------------------------------


def _api(args: argparse.Namespace, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    key = args.api_key or os.environ.get("GSMGW_API_KEY")
    if not key:
        raise SystemExit("gsmgw: give --api-key or set GSMGW_API_KEY")
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        args.url.rstrip("/") + path,
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
    except urllib.error.URLError as exc:
        raise SystemExit(f"gsmgw: cannot reach {args.url}: {exc.reason}") from None


def cmd_send(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"to": args.to if len(args.to) > 1 else args.to[0], "text": args.text}
    if args.priority is not None:
        body["priority"] = args.priority
    if args.sim:
        body["sim"] = args.sim
    if args.flash:
        body["flash"] = True
    status, reply = _api(args, "POST", "/api/v1/messages", body)
    print(json.dumps(reply, indent=2))
    if status != 202:
        return 1
    if args.wait_s > 0:
        import time

        deadline = time.monotonic() + args.wait_s
        mid = reply["messages"][0]["id"]
        while time.monotonic() < deadline:
            _, msg = _api(args, "GET", f"/api/v1/messages/{mid}")
            if msg.get("state") not in ("queued", "sending"):
                print(json.dumps(msg, indent=2))
                return 0 if msg["state"] in ("sent", "delivered") else 1
            time.sleep(0.2)
        print("gsmgw send: still not sent after --wait-s", file=sys.stderr)
        return 1
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    status, reply = _api(args, "GET", "/api/v1/status")
    if args.json or status != 200:
        print(json.dumps(reply, indent=2))
        return 0 if status == 200 else 1
    print(f"gsmgw {reply['version']}  up {dt.timedelta(seconds=int(reply['uptime_s']))}  "
          f"queue {reply['queue_depth']}  ready modems {reply['modems_ready']}/{len(reply['modems'])}")
    for m in reply["modems"]:
        flag = "" if m["enabled"] else " (disabled)"
        print(f"  {m['id']:<12} {m['state']:<12} {m['operator'] or '-':<20} csq={m['signal_csq']} "
              f"sent={m['sent_parts']} failed={m['failed_parts']}{flag}")
    return 0


# --- parser -------------------------------------------------------------------------


def _client_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=os.environ.get("GSMGW_URL", "http://127.0.0.1:8080"),
                   help="gateway base URL (env GSMGW_URL; default %(default)s)")
    p.add_argument("--api-key", help="API key (default: env GSMGW_API_KEY)")
    p.add_argument("--timeout-s", type=float, default=10.0, help="HTTP timeout in seconds")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gsmgw",
        description="On-premises SMS gateway for a pool of GSM/LTE modems.",
    )
    parser.add_argument("--version", action="version", version=f"gsmgw {__version__}")
    parser.add_argument("--log-level", choices=["trace", "debug", "info", "warning", "error"],
                        help="override [logging] level (trace shows raw AT traffic)")
    parser.add_argument("--log-format", choices=["text", "json"], help="override [logging] format")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("run", help="run the gateway from a config file",
                       description="Run the gateway: open the store (migrating it), start every "
                       "[[modem]], serve the HTTP API. Stops cleanly on SIGTERM/SIGINT; SIGHUP "
                       "reloads the config file (modems, limits, routing) without dropping the queue.")
    p.add_argument("--config", "-c", default=os.environ.get("GSMGW_CONFIG", DEFAULT_CONFIG),
                   help="TOML config file (env GSMGW_CONFIG; default %(default)s)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="try gsmgw: emulated modems, SQLite, API on localhost",
                       description="Run the gateway on its embedded defaults: SQLite in a state "
                       "folder, N emulated modems on pseudo-terminals, and the API on 127.0.0.1. "
                       "Prints the API address and an API key.")
    p.add_argument("--modems", type=int, default=3, help="number of emulated modems (default 3)")
    p.add_argument("--host", default="127.0.0.1", help="API listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="API port (default 8080; 0 = any free)")
    p.add_argument("--state-dir", help=f"state folder (default {default_state_dir()})")
    p.add_argument("--api-key", help="use this API key instead of a generated one")
    p.add_argument("--latency-s", type=float, default=1.0,
                   help="emulated network send latency per SMS part in seconds (default 1.0)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("send", help="send an SMS through a running gateway",
                       description="POST /api/v1/messages on a running gateway.")
    _client_args(p)
    p.add_argument("--to", required=True, action="append", help="recipient (E.164); repeat for several")
    p.add_argument("--text", required=True, help="message text")
    p.add_argument("--priority", help="low, normal, high, otp or -10..10")
    p.add_argument("--sim", help="send from this modem id")
    p.add_argument("--flash", action="store_true", help="class 0 (flash) SMS")
    p.add_argument("--wait-s", type=float, default=0.0, help="wait up to this long for sent/failed")
    p.set_defaults(func=cmd_send)

    p = sub.add_parser("status", help="show a running gateway's status",
                       description="GET /api/v1/status on a running gateway.")
    _client_args(p)
    p.add_argument("--json", action="store_true", help="print the raw JSON")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("keys", help="create, list and revoke API keys",
                       description="Manage API keys in the gateway's store (keys are stored hashed; "
                       "a new key is printed once, alone on stdout).")
    p.add_argument("--config", "-c", default=os.environ.get("GSMGW_CONFIG", DEFAULT_CONFIG),
                   help="TOML config file (default %(default)s)")
    ksub = p.add_subparsers(dest="keys_cmd", required=True, metavar="ACTION")
    kc = ksub.add_parser("create", help="create a key and print it")
    kc.add_argument("name", help="a label for the key (who uses it)")
    kc.add_argument("--scope", default="send,read", help="comma list of send, read, admin (default send,read)")
    kc.add_argument("--rate-per-s", type=int, default=0, help="request rate limit (0 = none)")
    kc.add_argument("--daily-quota", type=int, default=0, help="messages per day (0 = none)")
    kc.add_argument("--config", "-c", default=argparse.SUPPRESS, help="TOML config file")
    kl = ksub.add_parser("list", help="list keys (never their secrets)")
    kl.add_argument("--config", "-c", default=argparse.SUPPRESS, help="TOML config file")
    kr = ksub.add_parser("revoke", help="revoke a key by id")
    kr.add_argument("key_id")
    kr.add_argument("--config", "-c", default=argparse.SUPPRESS, help="TOML config file")
    p.set_defaults(func=cmd_keys)

    p = sub.add_parser("store", help="copy or migrate a store",
                       description="Database maintenance. `copy` moves a gateway's data, queue included, "
                       "to another store (e.g. SQLite to PostgreSQL for several hosts); stop the gateway first.")
    ssub = p.add_subparsers(dest="store_cmd", required=True, metavar="ACTION")
    sc = ssub.add_parser("copy", help="copy every table into an empty store")
    sc.add_argument("--from", dest="src", required=True, help="source SQLAlchemy URL, e.g. sqlite:////var/lib/gsmgw/gsmgw.db")
    sc.add_argument("--to", dest="dst", required=True, help="target URL, e.g. postgresql+psycopg://gsmgw@db/gsmgw")
    sc.add_argument("--force", action="store_true", help="copy even if the target already has rows")
    sm = ssub.add_parser("migrate", help="bring a store to the current schema")
    sm.add_argument("--url", required=True, help="SQLAlchemy URL")
    p.set_defaults(func=cmd_store)

    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # only a missing module itself is tolerated
            if exc.name != name:
                raise
            continue
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"gsmgw: config error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
