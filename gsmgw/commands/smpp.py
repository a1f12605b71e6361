"""``gsmgw smpp accounts create|list|revoke``: the SMPP server's accounts.

An account is a system_id and a password (SMPP 3.4 allows 8 characters), stored
as a scrypt hash, with scopes, a request rate, a daily quota and a bind limit like
an API key. ``create`` prints the password once, alone on stdout (a generated one
unless ``--password`` gives it).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from gsmgw.config import load
from gsmgw.smpp.accounts import SCOPES, check_password, check_system_id, hash_password, new_password


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("smpp", help="the SMPP server's accounts", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    ssub = p.add_subparsers(dest="smpp_cmd", required=True, metavar="{accounts}")
    a = ssub.add_parser("accounts", help="create, list and revoke SMPP accounts")
    asub = a.add_subparsers(dest="accounts_cmd", required=True, metavar="ACTION")
    config = {"default": os.environ.get("GSMGW_CONFIG", "/etc/gsmgw/gsmgw.toml"),
              "help": "TOML config file (env GSMGW_CONFIG; default %(default)s)"}
    c = asub.add_parser("create", help="create an account and print its password")
    c.add_argument("system_id", help="the ESME's system_id (1-15 characters)")
    c.add_argument("--password", help="1-8 characters (default: 8 random ones)")
    c.add_argument("--scope", default="send,read", help="comma list of send, read, admin (default send,read)")
    c.add_argument("--rate-per-s", type=int, default=0, help="submit_sm per second (0 = no limit)")
    c.add_argument("--daily-quota", type=int, default=0, help="messages per UTC day (0 = no limit)")
    c.add_argument("--max-binds", type=int, default=0, help="concurrent binds on one host (0 = no limit)")
    c.add_argument("--note", default="", help="a label: who uses it")
    c.add_argument("--config", "-c", **config)
    ls = asub.add_parser("list", help="list accounts (never their passwords)")
    ls.add_argument("--config", "-c", **config)
    r = asub.add_parser("revoke", help="revoke an account by system_id")
    r.add_argument("system_id")
    r.add_argument("--config", "-c", **config)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gsmgw.store import Store

    cfg = load(args.config)
    store = Store(cfg.store.url)
    try:
        if cfg.store.migrate_on_start:
            store.migrate()
        if args.accounts_cmd == "create":
            return _create(store, args)
        if args.accounts_cmd == "list":
            for a in store.smpp.list_accounts():
                state = "revoked" if a["revoked_at"] else "active"
                print(f"{a['system_id']}\t{a['scopes']}\trate={a['rate_per_s']}/s\tquota={a['daily_quota']}/day"
                      f"\tbinds={a['max_binds'] or '-'}\t{state}\t{a['note']}")
            return 0
        if not store.smpp.revoke_account(args.system_id):
            print(f"gsmgw smpp accounts revoke: no active account {args.system_id!r}", file=sys.stderr)
            return 1
        print(f"revoked {args.system_id} (bound sessions keep going until they unbind; new binds "
              "are refused within 30 s)")
        return 0
    finally:
        store.close()


def _create(store: Any, args: argparse.Namespace) -> int:
    scopes = {s.strip() for s in args.scope.split(",") if s.strip()}
    password = args.password if args.password is not None else new_password()
    try:
        check_system_id(args.system_id)
        check_password(password)
        if not scopes or scopes - SCOPES:
            raise ValueError(f"scopes must be a non-empty subset of {sorted(SCOPES)}")
        if min(args.rate_per_s, args.daily_quota, args.max_binds) < 0:
            raise ValueError("limits must not be negative")
        store.smpp.create_account(
            args.system_id, hash_password(password), scopes, rate_per_s=args.rate_per_s,
            daily_quota=args.daily_quota, max_binds=args.max_binds, note=args.note)
    except ValueError as exc:
        print(f"gsmgw smpp accounts create: {exc}", file=sys.stderr)
        return 2
    print(password)
    return 0
