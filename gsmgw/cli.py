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
from pathlib import Path
from typing import Any

from gsmgw import __version__
from gsmgw.commands.client import (
    DEFAULT_CONFIG,
    CliError,
    api_call,
)
from gsmgw.commands.simcare import care_lines, cost_lines  # SIM care in `gsmgw status`
from gsmgw.config import Config, ConfigError, load, store_url_problem
from gsmgw.logs import setup_logging

log = logging.getLogger("gsmgw")

# Subcommands that live next to their feature (each module has register(sub)).
COMMAND_MODULES = ("gsmgw.commands.pdu", "gsmgw.commands.fake_modem", "gsmgw.commands.probe",
                   "gsmgw.commands.doctor", "gsmgw.commands.smpp",
                   "gsmgw.commands.schedules",
                   "gsmgw.commands.contacts",
                   "gsmgw.commands.reports")  # issue 21: report, audit



def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "gsmgw" / "demo"


# --- run ------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    cfg = load(args.config)
    setup_logging(args.log_level or cfg.logging.level, args.log_format or cfg.logging.format)
    from gsmgw.daemon import Gateway, freeze_startup_heap, install_signal_handlers, serve_reloadable

    async def main() -> int:
        stop = asyncio.Event()
        install_signal_handlers(stop)
        gw = Gateway(cfg)
        # SIGHUP re-reads --config (systemctl reload gsmgw); a bad file is refused.
        await serve_reloadable(gw, stop, args.config, on_ready=lambda _gw: freeze_startup_heap())
        return 1 if gw.fatal else 0

    return asyncio.run(main())


# --- demo -------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from gsmgw.store.keys import custom_key_problem

    if args.api_key is not None and (problem := custom_key_problem(args.api_key)) is not None:
        print(f"gsmgw demo: --api-key: {problem}; or leave it out and the demo makes one", file=sys.stderr)
        return 2
    if not 0 <= args.port <= 65535:
        print(f"gsmgw demo: --port {args.port}: expected 0..65535 (0 = any free port)", file=sys.stderr)
        return 2
    setup_logging(args.log_level or "info", args.log_format or "text")
    from gsmgw.demo import run_demo

    return asyncio.run(
        run_demo(
            modems=args.modems,
            host=args.host,
            port=args.port,
            state_dir=(Path(args.state_dir) if args.state_dir else default_state_dir()).expanduser().absolute(),
            api_key=args.api_key,
            latency_s=args.latency_s,
        )
    )


# --- keys -------------------------------------------------------------------------


def _open_store(cfg: Config) -> Any:
    """The store of a config, for commands that work beside a running gateway (keys)."""
    from gsmgw.store import Store
    from gsmgw.store.ownership import check_expected, remember_store

    check_expected(cfg.store.url, create=False,
                   hint=f"gsmgw store init --config {cfg.source}")
    store = Store(cfg.store.url)
    if cfg.store.migrate_on_start:
        store.migrate()
        remember_store(cfg.store.url)
    return store


def _cli_actor() -> str:
    """Who the audit log names for a command run here: cli:<user>@<machine>."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"cli:{user}@{socket.gethostname()}"


def cmd_keys(args: argparse.Namespace) -> int:
    cfg = load(args.config)
    store = _open_store(cfg)
    try:
        if args.keys_cmd == "create":
            scopes = [s.strip() for s in args.scope.split(",") if s.strip()]
            try:
                _key_id, key = store.keys.create_api_key(
                    args.name, scopes, rate_per_s=args.rate_per_s, daily_quota=args.daily_quota, actor=_cli_actor()
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
            if not store.keys.revoke_api_key(args.key_id, actor=_cli_actor()):
                print(f"gsmgw keys revoke: no active key {args.key_id!r}", file=sys.stderr)
                return 1
            from gsmgw.intake.admission import KeyCache

            print(f"revoked {args.key_id}; running gateways refuse it within {KeyCache().ttl_s:g} s "
                  "(the time they cache a checked key)")
    finally:
        store.close()
    return 0


def _store_url(args: argparse.Namespace) -> str:
    """``--url`` (a relative SQLite path is taken from the current folder) or ``--config``'s."""
    from gsmgw.config import store_url_problem
    from gsmgw.store.ownership import absolute_url

    if getattr(args, "url", None):
        if (problem := store_url_problem(args.url, allow_relative=True)) is not None:
            raise CliError(f"--url: {problem}")
        return absolute_url(args.url)
    return load(args.config).store.url


def _refuse_live(url: str, what: str, force: bool) -> None:
    from gsmgw.store.ownership import holders

    live = holders(url)
    if live and not force:
        raise CliError(f"{what} is in use by {'; '.join(live)}: stop the gateway first "
                       "(or --force, if you know what that does to a running gateway)")


def cmd_store(args: argparse.Namespace) -> int:
    from gsmgw.store.ownership import (
        SqliteLock,
        absolute_url,
        check_expected,
        remember_store,
        sqlite_path,
    )

    if args.store_cmd == "prune":  # issue 21
        from gsmgw.commands.reports import cmd_prune

        return cmd_prune(args)
    if args.store_cmd in ("migrate", "init"):
        from gsmgw.store import Store
        from gsmgw.store.migrate import current_revision, head_revision

        url = _store_url(args)
        create = args.store_cmd == "init" or args.create
        path = sqlite_path(url)
        if path is not None and not path.exists() and not create:
            raise CliError(f"no store at {path}: check the path (a typo?), or add --create to make a new one")
        check_expected(url, create=True)
        _refuse_live(url, f"the store {path or url}", args.force)
        # Hold the SQLite store while migrating: no gateway starts half-way through.
        lock = SqliteLock(path) if path is not None and not args.force else None
        if lock is not None:
            lock.acquire(command=f"gsmgw store {args.store_cmd}", host_id="")
        try:
            store = Store(url)
            try:
                before = current_revision(store.engine)
                store.migrate()
            finally:
                store.close()
            remember_store(url)
        finally:
            if lock is not None:
                lock.release()
        head = head_revision()
        if before is None:
            print(f"created a new store at {path or url} (schema {head})")
        elif before == head:
            print(f"the store is already at the current schema ({head})")
        else:
            print(f"migrated from {before} to {head}")
        return 0
    from gsmgw.store.copy import copy_store

    for name, url in (("--from", args.src), ("--to", args.dst)):
        if (problem := store_url_problem(url, allow_relative=True)) is not None:
            raise CliError(f"{name}: {problem}")
    src = absolute_url(args.src)
    dst = absolute_url(args.dst)
    src_path = sqlite_path(src)
    if src_path is not None and not src_path.exists():
        raise CliError(f"--from: no store at {src_path}: check the path")
    _refuse_live(src, "the source store", args.force)
    _refuse_live(dst, "the target store", args.force)
    counts = copy_store(src, dst, force=args.force)
    remember_store(dst)
    for name, n in counts.items():
        print(f"{name:<24} {n}")
    return 0


# --- HTTP client commands ------------------------------------------------------------


def _error_line(status: int, reply: Any) -> str:
    err = reply.get("error") if isinstance(reply, dict) else None
    if isinstance(err, dict):
        where = f" ({err['field']})" if err.get("field") else ""
        return f"HTTP {status} {err.get('code', '?')}{where}: {err.get('message', '')}"
    return f"HTTP {status}: {reply!r}"


def _summary(reply: dict[str, Any]) -> str:
    """One line per message of a POST /api/v1/messages reply."""
    msgs = reply.get("messages") or [reply]
    lines = []
    if reply.get("replayed"):
        lines.append("(an earlier request with this Idempotency-Key: nothing new was queued)")
    for m in msgs:
        parts = m.get("parts")
        n = parts if isinstance(parts, int) else len(parts or [])
        lines.append(f"{m.get('state', 'queued'):<9} {m.get('id')}  to {m.get('to', '?')}  "
                     f"{m.get('encoding', '?')}, {n} part{'s' if n != 1 else ''}")
    if len(msgs) > 1 and reply.get("batch_id"):
        lines.append(f"batch {reply['batch_id']}: {len(msgs)} messages")
    for w in reply.get("warnings") or []:
        lines.append(f"warning: {w.get('message', w) if isinstance(w, dict) else w}")
    return "\n".join(lines)


def cmd_send(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"to": args.to if len(args.to) > 1 else args.to[0], "text": args.text}
    if args.priority is not None:
        body["priority"] = args.priority
    if args.sim:
        body["sim"] = args.sim
    if args.flash:
        body["flash"] = True
    status, reply = api_call(args, "POST", "/api/v1/messages", body)
    if status != 202:
        print(json.dumps(reply, indent=2) if args.json else f"gsmgw send: {_error_line(status, reply)}",
              file=sys.stdout if args.json else sys.stderr)
        return 1
    print(json.dumps(reply, indent=2) if args.json else _summary(reply), flush=True)
    if args.wait_s > 0:
        import time

        deadline = time.monotonic() + args.wait_s
        mid = (reply.get("messages") or [reply])[0]["id"]
        while time.monotonic() < deadline:
            _, msg = api_call(args, "GET", f"/api/v1/messages/{mid}")
            if msg.get("state") not in ("queued", "sending"):
                if args.json:
                    print(json.dumps(msg, indent=2))
                else:
                    err = msg.get("error_text") or msg.get("error_code") or ""
                    print(f"{msg['state']:<9} {mid}" + (f" from {msg['sim']}" if msg.get("sim") else "")
                          + (f": {err}" if err and msg["state"] not in ("sent", "delivered") else ""))
                return 0 if msg["state"] in ("sent", "delivered") else 1
            time.sleep(0.2)
        print(f"gsmgw send: {mid} still not sent after --wait-s {args.wait_s:g}", file=sys.stderr)
        return 1
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    status, reply = api_call(args, "GET", "/api/v1/status")
    if args.json:
        print(json.dumps(reply, indent=2))
        return 0 if status == 200 else 1
    if status != 200:
        print(f"gsmgw status: {_error_line(status, reply)}", file=sys.stderr)
        return 1
    readiness = reply.get("readiness") or {}
    print(f"gsmgw {reply['version']}  up {dt.timedelta(seconds=int(reply['uptime_s']))}  "
          f"queue {reply['queue_depth']}  ready modems {reply['modems_ready']}/{len(reply['modems'])}"
          + (f"  status {readiness['status']}" if readiness.get("status") else ""))
    for reason in readiness.get("reasons") or []:
        print(f"  ! {reason}")
    for m in reply["modems"]:
        flag = "" if m["enabled"] else " (disabled)"
        print(f"  {m['id']:<12} {m['state']:<12} {m['operator'] or '-':<20} csq={m['signal_csq']} "
              f"sent={m['sent_parts']} failed={m['failed_parts']}{flag}")
        why = m.get("state_reason") or ""
        if m["state"] != "ready" and why:
            print(f"  {'':<12} why: {why}")
        if m.get("last_error") and m.get("last_error") != why:
            print(f"  {'':<12} last error: {m['last_error']}")
        for line in care_lines(m, reply.get("cost")):  # SIM care (issue 20)
            print(line)
    for line in cost_lines(reply.get("cost")):
        print(line)
    return 0


# --- parser -------------------------------------------------------------------------


def _client_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", help="gateway base URL (default: env GSMGW_URL, else from the config's "
                   "[client] url or [api] listen, else http://127.0.0.1:8080)")
    p.add_argument("--api-key", help="API key (default: env GSMGW_API_KEY, else the config's "
                   "[client] api_key_file)")
    p.add_argument("--config", "-c", default=os.environ.get("GSMGW_CONFIG"),
                   help="config file to find the gateway and its key in (env GSMGW_CONFIG; "
                   "gsmgw demo writes one)")
    p.add_argument("--timeout-s", type=float, default=10.0, help="HTTP timeout in seconds")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line; given ``argv`` whose command is one of the core ones
    defined here (``run``, ``demo``, ``status``...), without the COMMAND_MODULES (the
    emulator, SMPP, probe...): a running gateway does not carry them (1.4 MB of RSS)."""
    parser = PlainHelpParser(
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
    p.add_argument("--json", action="store_true", help="print the raw JSON replies")
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

    p = sub.add_parser("store", help="create, migrate or copy a store",
                       description="Database maintenance. `init` creates a new empty store (a gateway "
                       "never creates one where a store was before); `migrate` brings one to the current "
                       "schema; `copy` moves a gateway's data, queue included, to another store (e.g. "
                       "SQLite to PostgreSQL for several hosts). Each refuses a store that a running "
                       "gateway holds unless --force: stop the gateway first.")
    ssub = p.add_subparsers(dest="store_cmd", required=True, metavar="ACTION")
    sc = ssub.add_parser("copy", help="copy every table into an empty store")
    sc.add_argument("--from", dest="src", required=True,
                    help="source SQLAlchemy URL, e.g. sqlite:////var/lib/gsmgw/gsmgw.db")
    sc.add_argument("--to", dest="dst", required=True, help="target URL, e.g. postgresql+psycopg://gsmgw@db/gsmgw")
    sc.add_argument("--force", action="store_true",
                    help="copy even if the target already has rows or a running gateway holds either store")
    for name, helptext in (("migrate", "bring a store to the current schema"),
                           ("init", "create a new, empty store (or migrate an existing one)")):
        sm = ssub.add_parser(name, help=helptext)
        where = sm.add_mutually_exclusive_group()
        where.add_argument("--url", help="SQLAlchemy URL (a relative SQLite path is taken from the "
                           "current folder)")
        where.add_argument("--config", "-c", default=os.environ.get("GSMGW_CONFIG", DEFAULT_CONFIG),
                           help="use the [store] url of this config (env GSMGW_CONFIG; default %(default)s)")
        if name == "migrate":
            sm.add_argument("--create", action="store_true", help="create the store if it does not exist")
        sm.add_argument("--force", action="store_true", help="even while a running gateway holds the store")
    from gsmgw.commands.reports import add_prune_parser

    add_prune_parser(ssub)  # issue 21: gsmgw store prune
    p.set_defaults(func=cmd_store)

    command = _command_of(argv) if argv is not None else None
    if command is not None and command in sub.choices:
        return parser
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # only a missing module itself is tolerated
            if exc.name != name:
                raise
            continue
        mod.register(sub)
    return parser


def _command_of(argv: list[str]) -> str | None:
    """The COMMAND in ``argv`` (the first word that is not a top-level option or its value)."""
    takes_value = {"--log-level", "--log-format"}
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in takes_value:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


class PlainHelpParser(argparse.ArgumentParser):
    """--help is read in a terminal: without the reST/Markdown backticks of docstrings."""

    def format_help(self) -> str:
        return super().format_help().replace("``", "").replace("`", "")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    from gsmgw.errors import ListenError, StoreError

    name = " ".join(["gsmgw", args.command, *[a for a in (getattr(args, "store_cmd", None),
                                                         getattr(args, "keys_cmd", None)) if a]])
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"{name}: config error: {exc}", file=sys.stderr)
        return 2
    except CliError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return exc.code
    except (StoreError, ListenError) as exc:
        # Refusals with their fix (store in use, missing, port in use): one line, no traceback.
        print(f"{name}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
