"""``gsmgw schedules list|show|create|pause|resume|delete|keepalive``: recurring messages
and SIM keep-alive, through the gateway's HTTP API (the key's scopes apply: a key
manages its own schedules, an admin key every key's).

Examples::

    gsmgw schedules create --rrule "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0" \\
        --timezone Europe/Berlin --to +4915112345678 --text "Team meeting at 10:00"
    gsmgw schedules create --cron "0 7 * * 1-5" --timezone Europe/Berlin \\
        --to +4915112345678 --template "Readings for {date}" --missed skip
    gsmgw schedules list
    gsmgw schedules pause ID ; gsmgw schedules resume ID ; gsmgw schedules delete ID
    gsmgw schedules keepalive

The gateway and key: --url/--api-key, else GSMGW_URL/GSMGW_API_KEY, else the
config's [client] url and api_key_file (GSMGW_CONFIG).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from gsmgw.commands.client import CliError, api_call
from gsmgw.config import ConfigError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("schedules", help="recurring messages and SIM keep-alive (through the API)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ssub = p.add_subparsers(dest="schedules_cmd", required=True, metavar="ACTION")

    def client(q: argparse.ArgumentParser) -> None:
        q.add_argument("--url", help="gateway base URL (default: env GSMGW_URL, else the config)")
        q.add_argument("--api-key", help="API key (default: env GSMGW_API_KEY, else [client] api_key_file)")
        q.add_argument("--config", "-c", default=os.environ.get("GSMGW_CONFIG"),
                       help="config file naming the gateway and its key (env GSMGW_CONFIG)")
        q.add_argument("--timeout-s", type=float, default=10.0, help="HTTP timeout in seconds")
        q.add_argument("--json", action="store_true", help="print the API's JSON")

    ls = ssub.add_parser("list", help="list schedules with their next and last run")
    client(ls)
    for name, what in (("show", "one schedule, its upcoming runs and its messages"), ("pause", "pause a schedule"),
                       ("resume", "resume a schedule (what passed while paused is not sent)"),
                       ("delete", "delete a schedule (its messages stay)")):
        q = ssub.add_parser(name, help=what)
        q.add_argument("id")
        client(q)
    c = ssub.add_parser("create", help="create a schedule (RRULE or cron, in a time zone)")
    rule = c.add_mutually_exclusive_group(required=True)
    rule.add_argument("--rrule", help='RFC 5545 RRULE, e.g. "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0"')
    rule.add_argument("--cron", help='5-field cron, e.g. "0 9 * * 1-5"')
    c.add_argument("--timezone", default="UTC", help="IANA time zone (default UTC), e.g. Europe/Berlin")
    c.add_argument("--start", help="first possible occurrence, ISO 8601 with a zone (default now)")
    c.add_argument("--to", action="append", required=True, help="recipient (repeat for several)")
    body = c.add_mutually_exclusive_group(required=True)
    body.add_argument("--text")
    body.add_argument("--template", help="with {name} placeholders; {date} and {time} are the occurrence's")
    c.add_argument("--var", action="append", default=[], metavar="NAME=VALUE", help="template variable")
    c.add_argument("--sim", help="modem id to send from")
    c.add_argument("--priority", help="low, normal, high, otp or -10..10")
    c.add_argument("--missed", choices=("once", "skip"), default="once",
                   help="after downtime: send the latest missed occurrence once (default), or skip")
    c.add_argument("--name", default="")
    client(c)
    k = ssub.add_parser("keepalive", help="SIM keep-alive per SIM: last success, next due, expiry risk")
    client(k)
    p.set_defaults(func=run)


def _line(s: dict[str, Any]) -> str:
    rule = f"rrule {s['rrule']}" if "rrule" in s else f"cron {s.get('cron')}"
    state = "paused" if s["paused"] else f"next run {s['next_run_local'] or '(ended)'}"
    last = f", last run {s['last_run_local']}" if s.get("last_run_local") else ""
    err = f", last error: {s['last_error']}" if s.get("last_error") else ""
    return (f"{s['id']}  {s['name'] or '-'}  {rule} ({s['timezone']}), missed={s['missed']}: {state}{last}, "
            f"{s['runs']} run(s), {s['skipped']} skipped{err}")


def run(args: argparse.Namespace) -> int:
    cmd = args.schedules_cmd
    try:
        if cmd == "list":
            status, reply = api_call(args, "GET", "/api/v1/schedules?limit=500")
        elif cmd == "show":
            status, reply = api_call(args, "GET", f"/api/v1/schedules/{args.id}")
        elif cmd in ("pause", "resume"):
            status, reply = api_call(args, "POST", f"/api/v1/schedules/{args.id}/{cmd}")
        elif cmd == "delete":
            status, reply = api_call(args, "DELETE", f"/api/v1/schedules/{args.id}")
        elif cmd == "keepalive":
            status, reply = api_call(args, "GET", "/api/v1/keepalive")
        else:
            status, reply = api_call(args, "POST", "/api/v1/schedules", _create_body(args))
    except (CliError, ConfigError, ValueError) as exc:
        print(f"gsmgw schedules {cmd}: {exc}", file=sys.stderr)
        return 2
    if status >= 400:
        err = reply.get("error") if isinstance(reply, dict) else None
        if isinstance(err, dict):
            where = f" ({err['field']})" if err.get("field") else ""
            print(f"gsmgw schedules {cmd}: HTTP {status} {err.get('code')}{where}: {err.get('message')}",
                  file=sys.stderr)
        else:
            print(f"gsmgw schedules {cmd}: HTTP {status}: {reply!r}", file=sys.stderr)
        return 1
    if args.json or cmd == "show":
        print(json.dumps(reply, indent=2, ensure_ascii=False))
    elif cmd == "list":
        for s in reply["items"]:
            print(_line(s))
    elif cmd == "delete":
        print(f"deleted {args.id}")
    elif cmd == "keepalive":
        for k in reply["items"]:
            last = k["last_run"]
            result = "never run" if last is None else (
                f"last run {last['at']} {last['kind']} " + {True: "ok", False: "FAILED", None: "pending"}[last["ok"]])
            print(f"{k['sim']}  {'on' if k['enabled'] else 'off'}  {k['action']} {k['target']} every "
                  f"{k['every_days']:g} d: last success {k['last_success_at'] or 'never'}, next due "
                  f"{k['next_due_at'] or '-'}, {result}" + ("  EXPIRY RISK" if k["expiry_risk"] else ""))
    else:
        print(_line(reply))
    return 0


def _create_body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"timezone": args.timezone, "to": args.to, "missed": args.missed}
    for name in ("rrule", "cron", "start", "text", "template", "sim", "name"):
        if getattr(args, name):
            body[name] = getattr(args, name)
    if args.priority is not None:
        body["priority"] = int(args.priority) if args.priority.lstrip("-").isdigit() else args.priority
    if args.var:
        pairs = [v.split("=", 1) for v in args.var]
        if any(len(p) != 2 or not p[0] for p in pairs):
            raise ValueError("--var takes NAME=VALUE")
        body["variables"] = dict(pairs)
    return body
