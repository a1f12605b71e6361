"""``gsmgw contacts import|export|list|groups``: the address book from the shell.

``import FILE`` reads a CSV file (UTF-8; ``,`` ``;`` or tab, found from the header)
with a column mapping, numbers read as E.164 or national in ``--region`` (default
``[api] default_region``). Every row is accounted for: contacts created, updated or
skipped (``--on-duplicate``), invalid rows with their row number and reason,
duplicates of an earlier row, blank lines. ``--errors FILE`` writes the invalid and
duplicate rows as CSV. The exit status is 0 if every row was imported, 1 if some
were not, 2 if the file could not be read at all.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import sys
from pathlib import Path

from gsmgw.config import load


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("contacts", help="import, export and list contacts", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    csub = p.add_subparsers(dest="contacts_cmd", required=True, metavar="{import,export,list,groups}")
    config = {"default": os.environ.get("GSMGW_CONFIG", "/etc/gsmgw/gsmgw.toml"),
              "help": "TOML config file (env GSMGW_CONFIG; default %(default)s)"}
    i = csub.add_parser("import", help="import contacts from a CSV file")
    i.add_argument("file", help="the CSV file (- for stdin)")
    i.add_argument("--number", help="the number column (default: number, phone, mobile, ...)")
    i.add_argument("--name", help="the name column (default: name, if there is one)")
    i.add_argument("--fields", help="field columns, comma-separated (default: every other column)")
    i.add_argument("--tags", help="a column of tags separated by | , or ; (default: tags, if there is one)")
    i.add_argument("--groups", help="a column of group names separated by | (default: groups or group)")
    i.add_argument("--group", help="put every imported contact in this group")
    i.add_argument("--tag", action="append", default=[], help="give every imported contact this tag")
    i.add_argument("--region", help="where national numbers are read, e.g. GB (default: [api] default_region)")
    i.add_argument("--on-duplicate", choices=("update", "skip"), default="update",
                   help="a number that is already a contact (default: update)")
    i.add_argument("--delimiter", choices=(",", ";", "tab", "|"), help="default: from the header line")
    i.add_argument("--errors", help="write the rows not imported (row, reason) to this CSV file")
    i.add_argument("--json", action="store_true", help="print the report as JSON")
    i.add_argument("--config", "-c", **config)
    e = csub.add_parser("export", help="export contacts as CSV")
    e.add_argument("file", nargs="?", default="-", help="where to write (default: stdout)")
    e.add_argument("--group", help="only this group (a name)")
    e.add_argument("--tag", help="only contacts with this tag")
    e.add_argument("--config", "-c", **config)
    ls = csub.add_parser("list", help="list contacts")
    ls.add_argument("--group", help="only this group (a name)")
    ls.add_argument("--tag", help="only contacts with this tag")
    ls.add_argument("--limit", type=int, default=100)
    ls.add_argument("--config", "-c", **config)
    g = csub.add_parser("groups", help="list groups and their member counts")
    g.add_argument("--config", "-c", **config)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    from gsmgw.campaigns import ColumnMapping, ContactsService, ImportOptions
    from gsmgw.errors import ValidationError
    from gsmgw.store import Store

    cfg = load(args.config)
    store = Store(cfg.store.url, default_region=cfg.api.default_region)
    try:
        if cfg.store.migrate_on_start:
            await store.call(store.migrate)
        svc = ContactsService(store, lambda: cfg)
        group_id = None
        if getattr(args, "group", None) and args.contacts_cmd in ("export", "list"):
            g = await store.call(store.contacts.group_by_name, args.group)
            if g is None:
                print(f"gsmgw contacts {args.contacts_cmd}: no group {args.group!r}", file=sys.stderr)
                return 2
            group_id = g["id"]
        if args.contacts_cmd == "import":
            try:
                data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()  # noqa: ASYNC240 (a CLI: nothing else runs)
            except OSError as exc:
                print(f"gsmgw contacts import: {args.file}: {exc.strerror}", file=sys.stderr)
                return 2
            fields = tuple(f.strip() for f in args.fields.split(",") if f.strip()) if args.fields else None
            options = ImportOptions(
                mapping=ColumnMapping(number=args.number, name=args.name, fields=fields, tags=args.tags,
                                      groups=args.groups),
                default_region=args.region, on_duplicate=args.on_duplicate,
                delimiter="\t" if args.delimiter == "tab" else args.delimiter, group=args.group,
                tags=tuple(args.tag))
            try:
                report = await svc.import_csv(data, options)
            except ValidationError as exc:
                print(f"gsmgw contacts import: {exc.message}", file=sys.stderr)
                return 2
            d = report.as_dict()
            if args.errors:
                with open(args.errors, "w", newline="", encoding="utf-8") as f:  # noqa: ASYNC230
                    w = csv.writer(f)
                    w.writerow(["row", "reason", "value"])
                    for x in d["errors"]:
                        w.writerow([x["row"], x["reason"], x.get("value", "")])
                    for x in d["duplicate_rows"]:
                        w.writerow([x["row"], f"duplicate of row {x['duplicate_of']}", x["number"]])
            if args.json:
                print(json.dumps(d, indent=1))
            else:
                print(f"{d['rows']} rows: {d['created']} created, {d['updated']} updated, {d['skipped']} skipped "
                      f"(already contacts), {d['invalid']} invalid, {d['duplicates']} duplicates in the file, "
                      f"{d['blank']} blank")
                for x in d["errors"][:20]:
                    print(f"  row {x['row']}: {x['reason']}" + (f" ({x['value']!r})" if x.get("value") else ""))
                if d["invalid"] > 20:
                    print(f"  ... {d['invalid'] - 20} more" + ("" if args.errors else " (--errors FILE lists all)"))
            return 0 if d["invalid"] == d["duplicates"] == 0 else 1
        if args.contacts_cmd == "export":
            out = sys.stdout.buffer if args.file == "-" else open(args.file, "wb")  # noqa: ASYNC230
            try:
                async for chunk in svc.export_csv(group_id=group_id, tag=args.tag):
                    out.write(chunk)
            finally:
                if out is not sys.stdout.buffer:
                    out.close()
            return 0
        if args.contacts_cmd == "list":
            for c in await store.call(store.contacts.list_contacts, limit=args.limit, group_id=group_id,
                                      tag=args.tag):
                flags = " (opted out)" if c["opted_out"] else ""
                print(f"{c['number']}\t{c['name']}\t{','.join(c['groups'])}\t{','.join(c['tags'])}{flags}")
            return 0
        for g in await store.call(store.contacts.list_groups):
            print(f"{g['name']}\t{g['members']}\t{g['id']}")
        return 0
    finally:
        store.close()
