"""``gsmgw report``, ``gsmgw audit`` and ``gsmgw store prune`` (issue 21).

They work on the store of ``--config`` directly, beside a running gateway (as
``gsmgw keys`` does): the report rollup and the prune lease are safe to share.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import json
import os
import socket
import sys
from typing import Any

from gsmgw.commands.client import DEFAULT_CONFIG
from gsmgw.config import Config
from gsmgw.config import load as load_config


def _actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"cli:{user}@{socket.gethostname()}"


def _store(cfg: Config) -> Any:
    from gsmgw.store import Store
    from gsmgw.store.ownership import check_expected

    check_expected(cfg.store.url, create=False, hint=f"gsmgw store init --config {cfg.source}")
    store = Store(cfg.store.url, host=cfg.store.host_id or socket.gethostname(),
                  default_region=cfg.api.default_region)
    if cfg.store.migrate_on_start:
        store.migrate()
    return store


def _day(raw: str) -> dt.date:
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a day as YYYY-MM-DD, got {raw!r}") from None


def _report(args: argparse.Namespace) -> int:
    from gsmgw.housekeeping import roll_up
    from gsmgw.store.rollup import FAILURE_CLASSES, rows_to_csv

    cfg = load_config(args.config)
    store = _store(cfg)
    try:
        to = args.to or dt.datetime.now(dt.UTC).date()
        frm = args.frm or to - dt.timedelta(days=30)

        async def run() -> list[dict[str, Any]]:
            if not args.no_roll:
                await roll_up(store)
            return await store.call(store.rollup.report, group_by=args.group_by, period=args.period,
                                    date_from=frm, date_to=to, api_key_id=args.key)

        rows = asyncio.run(run())
    finally:
        store.close()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if args.csv:
        sys.stdout.write(rows_to_csv(rows, args.group_by))
        return 0
    head = ("period", args.group_by, "msgs", "sent", "dlvd", "failed", "rate", "p50_s", "p95_s", "replies",
            "optouts", "cost")
    print("\t".join(head))
    for r in rows:
        print("\t".join(str(x) for x in (
            r["period"], r[args.group_by] or "-", r["messages"], r["parts_sent"], r["parts_delivered"],
            r["parts_failed"], "-" if r["delivery_rate"] is None else f"{r['delivery_rate']:.1%}",
            r["ttd_p50_s"] if r["ttd_p50_s"] is not None else "-",
            r["ttd_p95_s"] if r["ttd_p95_s"] is not None else "-",
            r["replies"], r["optouts"], f"{r['cost_micros'] / 1e6:.2f}")))
        failed = {c: r["failed_by_class"][c] for c in FAILURE_CLASSES if r["failed_by_class"][c]}
        if failed and args.verbose:
            print("\t\tfailed: " + ", ".join(f"{c} {n}" for c, n in failed.items()))
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    store = _store(cfg)
    try:
        rows = store.audit.list_entries(action=args.action, limit=args.limit)
    finally:
        store.close()
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    for r in rows:
        print(f"{r['id']}\t{r['at']:%Y-%m-%d %H:%M:%S}Z\t{r['actor']}\t{r['action']}\t{r['target']}\t"
              f"{json.dumps(r['detail'], sort_keys=True)}")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    """``gsmgw store prune [--dry-run]``: the daily prune, now."""
    from gsmgw.housekeeping import prune

    cfg = load_config(args.config)
    rc = cfg.retention
    if not any((rc.messages_days, rc.inbound_days, rc.events_days, rc.webhook_deliveries_days)):
        print("gsmgw store prune: [retention] keeps everything (every *_days is 0); nothing to do",
              file=sys.stderr)
    store = _store(cfg)
    try:
        report = asyncio.run(prune(store, rc, dry_run=args.dry_run, actor=_actor()))
    finally:
        store.close()
    if not report.ran:
        print("gsmgw store prune: another host is pruning this store now (the prune lease); nothing done",
              file=sys.stderr)
        return 1
    verb = "would delete" if args.dry_run else "deleted"
    for kind, n in report.deleted.items():
        print(f"{kind}\t{verb} {n}")
    if not args.dry_run:
        print(f"(rolled {report.rolled_events} events into the reports first; {report.elapsed_s} s)")
    return 0


def add_prune_parser(ssub: Any) -> None:
    """``gsmgw store prune`` (called by gsmgw.cli where the store subcommands are built)."""
    sp = ssub.add_parser("prune", help="delete what [retention] no longer keeps, in small batches",
                         description="Roll the report aggregates up, then delete messages, inbound "
                         "messages, events and webhook deliveries older than [retention] keeps, in "
                         "batches; safe beside a running gateway (and other hosts: one prunes at a time).")
    sp.add_argument("--config", "-c", default=os.environ.get("GSMGW_CONFIG", DEFAULT_CONFIG),
                    help="TOML config file (env GSMGW_CONFIG; default %(default)s)")
    sp.add_argument("--dry-run", action="store_true", help="count what would go, delete nothing")


def register(sub: Any) -> None:
    p = sub.add_parser("report", help="delivery reports per SIM, key or campaign and day or month",
                       description="Parts sent, delivered and failed (by class), delivery rate, "
                       "time to delivered (p50/p95), replies, opt-outs and cost, from the daily "
                       "aggregates (GET /api/v1/reports).")
    p.add_argument("--config", "-c", default=os.environ.get("GSMGW_CONFIG", DEFAULT_CONFIG),
                   help="TOML config file (env GSMGW_CONFIG; default %(default)s)")
    p.add_argument("--group-by", choices=("sim", "key", "campaign"), default="sim")
    p.add_argument("--period", choices=("day", "month"), default="day")
    p.add_argument("--from", dest="frm", type=_day, help="first day, YYYY-MM-DD (default: 30 days before --to)")
    p.add_argument("--to", type=_day, help="last day, inclusive (default: today, UTC)")
    p.add_argument("--key", help="only this API key's messages")
    p.add_argument("--no-roll", action="store_true", help="do not count the newest events first")
    p.add_argument("-v", "--verbose", action="store_true", help="failed parts by class too")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true")
    fmt.add_argument("--csv", action="store_true")
    p.set_defaults(func=_report)

    a = sub.add_parser("audit", help="the audit log of admin actions",
                       description="Keys created and revoked, modems enabled or drained, numbers erased, "
                       "config reloads and prunes, newest first (GET /api/v1/audit).")
    a.add_argument("--config", "-c", default=os.environ.get("GSMGW_CONFIG", DEFAULT_CONFIG),
                   help="TOML config file (env GSMGW_CONFIG; default %(default)s)")
    a.add_argument("--action", help="e.g. key.create, or a family: key.*")
    a.add_argument("--limit", type=int, default=100)
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_audit)


__all__ = ["add_prune_parser", "cmd_prune", "register"]
