"""Contacts, groups and tags (issue 21 part 1).

A contact is one E.164 number (unique) with a name, custom fields (a JSON object
of strings), groups and tags. Whether it opted out is read from the opt-out list
each time a contact is shown (``OptoutsRepo.opted_out``): never copied here, so
a STOP received a second ago shows at once and lifting an opt-out needs no sync.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from gsmgw.store import tables as t
from gsmgw.store.executor import Executor
from gsmgw.store.optouts import OptoutsRepo
from gsmgw.store.records import new_id, utcnow

# Rows per IN (...) list: well under SQLite's 32,766 bound parameters.
CHUNK = 500


@dataclass(frozen=True, slots=True)
class ContactIn:
    """A contact to create or update (number already E.164)."""

    number: str
    name: str | None = None  # None: keep the stored name on update
    fields: Mapping[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()  # group names (created when missing)


@dataclass(frozen=True, slots=True)
class UpsertResult:
    created: int
    updated: int
    skipped: tuple[str, ...]  # numbers that already existed (on_duplicate="skip")


def _chunks(seq: Sequence[Any], n: int = CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


class ContactsRepo:
    def __init__(self, db: Executor, optouts: OptoutsRepo) -> None:
        self.db = db
        self.optouts = optouts

    # --- groups -------------------------------------------------------------------------

    def _group_ids(self, conn: Connection, names: Iterable[str], now: Any) -> dict[str, str]:
        """Group name -> id, creating the groups that do not exist."""
        wanted = sorted(set(names))
        if not wanted:
            return {}
        g = t.contact_groups
        rows = conn.execute(select(g.c.name, g.c.id).where(g.c.name.in_(wanted))).all()
        ids = {r.name: r.id for r in rows}
        missing = [n for n in wanted if n not in ids]
        if missing:
            new = [{"id": new_id(), "name": n, "created_at": now} for n in missing]
            conn.execute(insert(g), new)
            ids.update({r["name"]: r["id"] for r in new})
        return ids

    def create_group(self, name: str) -> dict[str, Any] | None:
        """The new group; None if a group has that name."""
        row = {"id": new_id(), "name": name, "created_at": utcnow()}
        try:
            with self.db.tx() as conn:
                conn.execute(insert(t.contact_groups).values(**row))
        except IntegrityError:
            return None
        return {**row, "members": 0}

    def list_groups(self) -> list[dict[str, Any]]:
        g, m = t.contact_groups, t.contact_group_members
        q = (select(g, func.count(m.c.contact_id).label("members"))
             .select_from(g.outerjoin(m, m.c.group_id == g.c.id)).group_by(g.c.id).order_by(g.c.name))
        with self.db.read() as conn:
            return [dict(r._mapping) for r in conn.execute(q).all()]

    def get_group(self, group_id: str) -> dict[str, Any] | None:
        g, m = t.contact_groups, t.contact_group_members
        with self.db.read() as conn:
            row = conn.execute(select(g).where(g.c.id == group_id)).first()
            if row is None:
                return None
            n = conn.execute(select(func.count()).select_from(m).where(m.c.group_id == group_id)).scalar_one()
        return {**row._mapping, "members": int(n)}

    def group_by_name(self, name: str) -> dict[str, Any] | None:
        g = t.contact_groups
        with self.db.read() as conn:
            row = conn.execute(select(g).where(g.c.name == name)).first()
        return None if row is None else self.get_group(row.id)

    def rename_group(self, group_id: str, name: str) -> bool | None:
        """True renamed, False no such group, None the name is taken."""
        try:
            with self.db.tx() as conn:
                res = conn.execute(update(t.contact_groups).where(t.contact_groups.c.id == group_id)
                                   .values(name=name))
        except IntegrityError:
            return None
        return res.rowcount == 1

    def delete_group(self, group_id: str) -> bool:
        """Delete a group (its contacts stay)."""
        with self.db.tx() as conn:
            conn.execute(delete(t.contact_group_members).where(t.contact_group_members.c.group_id == group_id))
            return conn.execute(delete(t.contact_groups).where(t.contact_groups.c.id == group_id)).rowcount == 1

    def set_members(self, group_id: str, contact_ids: Sequence[str], *, add: bool) -> int | None:
        """Add (or remove) contacts to a group; how many changed, None if no such group.
        Unknown contact ids are ignored (the count says how many were)."""
        m = t.contact_group_members
        with self.db.tx() as conn:
            if conn.execute(select(t.contact_groups.c.id).where(t.contact_groups.c.id == group_id)).first() is None:
                return None
            changed = 0
            for chunk in _chunks(sorted(set(contact_ids))):
                known = set(conn.execute(select(t.contacts.c.id).where(t.contacts.c.id.in_(chunk))).scalars())
                present = set(conn.execute(select(m.c.contact_id).where(
                    m.c.group_id == group_id, m.c.contact_id.in_(chunk))).scalars())
                if add:
                    new = sorted(known - present)
                    if new:
                        conn.execute(insert(m), [{"group_id": group_id, "contact_id": c} for c in new])
                    changed += len(new)
                elif present:
                    conn.execute(delete(m).where(m.c.group_id == group_id, m.c.contact_id.in_(present)))
                    changed += len(present)
            return changed

    # --- contacts -----------------------------------------------------------------------

    def upsert_batch(self, items: Sequence[ContactIn], *, on_duplicate: str = "update") -> UpsertResult:
        """Create contacts, or update (``"update"``: name if given, fields merged, tags and
        groups added) or leave (``"skip"``) those whose number exists; one transaction.
        ``items`` must not repeat a number."""
        c = t.contacts
        now = utcnow()
        created = updated = 0
        skipped: list[str] = []
        with self.db.tx() as conn:
            existing: dict[str, Any] = {}
            for chunk in _chunks([i.number for i in items]):
                for r in conn.execute(select(c.c.id, c.c.number, c.c.name, c.c.fields)
                                      .where(c.c.number.in_(chunk))).all():
                    existing[r.number] = r
            groups = self._group_ids(conn, (g for i in items for g in i.groups), now)
            new_rows: list[dict[str, Any]] = []
            tags: list[dict[str, str]] = []
            members: list[dict[str, str]] = []
            touched: list[str] = []
            changes: list[dict[str, Any]] = []
            for item in items:
                old = existing.get(item.number)
                if old is None:
                    cid = new_id()
                    new_rows.append({"id": cid, "number": item.number, "name": item.name or "",
                                     "fields": json.dumps(dict(item.fields), ensure_ascii=False, sort_keys=True),
                                     "created_at": now, "updated_at": now})
                    created += 1
                elif on_duplicate == "skip":
                    skipped.append(item.number)
                    continue
                else:
                    cid = old.id
                    merged = {**json.loads(old.fields or "{}"), **item.fields}
                    changes.append({"_id": cid, "_name": old.name if item.name is None else item.name,
                                    "_fields": json.dumps(merged, ensure_ascii=False, sort_keys=True)})
                    touched.append(cid)
                    updated += 1
                tags.extend({"contact_id": cid, "tag": tag} for tag in set(item.tags))
                members.extend({"group_id": groups[g], "contact_id": cid} for g in set(item.groups))
            if new_rows:
                conn.execute(insert(c), new_rows)
            if changes:  # one executemany
                conn.execute(update(c).where(c.c.id == bindparam("_id")).values(
                    name=bindparam("_name"), fields=bindparam("_fields"), updated_at=now), changes)
            if touched:  # tags and groups are added to an updated contact: drop the ones it has
                for chunk in _chunks(touched):
                    have_t = {(r.contact_id, r.tag) for r in conn.execute(
                        select(t.contact_tags).where(t.contact_tags.c.contact_id.in_(chunk))).all()}
                    have_m = {(r.group_id, r.contact_id) for r in conn.execute(
                        select(t.contact_group_members).where(t.contact_group_members.c.contact_id.in_(chunk)))}
                    tags = [x for x in tags if (x["contact_id"], x["tag"]) not in have_t]
                    members = [x for x in members if (x["group_id"], x["contact_id"]) not in have_m]
                    # (a chunk's rows only match that chunk's contacts; the rest pass through)
            if tags:
                conn.execute(insert(t.contact_tags), tags)
            if members:
                conn.execute(insert(t.contact_group_members), members)
        return UpsertResult(created, updated, tuple(skipped))

    def create_contact(self, item: ContactIn) -> dict[str, Any] | None:
        """The new contact; None if its number is already a contact."""
        try:
            res = self.upsert_batch([item], on_duplicate="skip")
        except IntegrityError:  # created concurrently
            return None
        if res.skipped:
            return None
        return self.get_contact_by_number(item.number)

    def update_contact(self, contact_id: str, *, number: str | None = None, name: str | None = None,
                       fields: Mapping[str, str] | None = None, tags: Sequence[str] | None = None,
                       groups: Sequence[str] | None = None) -> dict[str, Any] | bool | None:
        """Replace what is given (fields, tags and groups as a whole). The contact, None if
        there is none, False if ``number`` belongs to another contact."""
        c = t.contacts
        now = utcnow()
        values: dict[str, Any] = {"updated_at": now}
        if number is not None:
            values["number"] = number
        if name is not None:
            values["name"] = name
        if fields is not None:
            values["fields"] = json.dumps(dict(fields), ensure_ascii=False, sort_keys=True)
        try:
            with self.db.tx() as conn:
                if conn.execute(update(c).where(c.c.id == contact_id).values(**values)).rowcount != 1:
                    return None
                if tags is not None:
                    conn.execute(delete(t.contact_tags).where(t.contact_tags.c.contact_id == contact_id))
                    if tags:
                        conn.execute(insert(t.contact_tags), [{"contact_id": contact_id, "tag": x} for x in set(tags)])
                if groups is not None:
                    m = t.contact_group_members
                    conn.execute(delete(m).where(m.c.contact_id == contact_id))
                    ids = self._group_ids(conn, groups, now)
                    if ids:
                        conn.execute(insert(m), [{"group_id": g, "contact_id": contact_id} for g in ids.values()])
        except IntegrityError:
            return False
        return self.get_contact(contact_id)

    def delete_contact(self, contact_id: str) -> bool:
        with self.db.tx() as conn:
            conn.execute(delete(t.contact_tags).where(t.contact_tags.c.contact_id == contact_id))
            conn.execute(delete(t.contact_group_members).where(t.contact_group_members.c.contact_id == contact_id))
            return conn.execute(delete(t.contacts).where(t.contacts.c.id == contact_id)).rowcount == 1

    def get_contact(self, contact_id: str) -> dict[str, Any] | None:
        rows = self._with_details(self._select(ids=[contact_id]))
        return rows[0] if rows else None

    def get_contact_by_number(self, number: str) -> dict[str, Any] | None:
        with self.db.read() as conn:
            cid = conn.execute(select(t.contacts.c.id).where(t.contacts.c.number == number)).scalar()
        return None if cid is None else self.get_contact(cid)

    def list_contacts(self, *, after: str | None = None, limit: int = 100, group_id: str | None = None,
                      tag: str | None = None, search: str | None = None) -> list[dict[str, Any]]:
        """A page in id order (oldest first), with groups, tags and opt-out status."""
        return self._with_details(self._select(after=after, limit=limit, group_id=group_id, tag=tag,
                                               search=search))

    def count_contacts(self) -> int:
        with self.db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(t.contacts)).scalar_one())

    def _select(self, *, ids: Sequence[str] | None = None, after: str | None = None, limit: int = 100,
                group_id: str | None = None, tag: str | None = None, search: str | None = None) -> list[Any]:
        c = t.contacts
        q = select(c).order_by(c.c.id).limit(limit)
        if ids is not None:
            q = q.where(c.c.id.in_(ids))
        if after:
            q = q.where(c.c.id > after)
        if group_id is not None:
            m = t.contact_group_members
            q = q.where(c.c.id.in_(select(m.c.contact_id).where(m.c.group_id == group_id)))
        if tag is not None:
            q = q.where(c.c.id.in_(select(t.contact_tags.c.contact_id).where(t.contact_tags.c.tag == tag)))
        if search:
            like = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            q = q.where(c.c.number.like(like, escape="\\") | c.c.name.like(like, escape="\\"))
        with self.db.read() as conn:
            return list(conn.execute(q).all())

    def _with_details(self, rows: list[Any]) -> list[dict[str, Any]]:
        if not rows:
            return []
        ids = [r.id for r in rows]
        tags: dict[str, list[str]] = {}
        groups: dict[str, list[str]] = {}
        g, m = t.contact_groups, t.contact_group_members
        with self.db.read() as conn:
            for chunk in _chunks(ids):
                for r in conn.execute(select(t.contact_tags).where(t.contact_tags.c.contact_id.in_(chunk))):
                    tags.setdefault(r.contact_id, []).append(r.tag)
                for r in conn.execute(select(m.c.contact_id, g.c.name).select_from(m.join(g, g.c.id == m.c.group_id))
                                      .where(m.c.contact_id.in_(chunk))):
                    groups.setdefault(r.contact_id, []).append(r.name)
        out_opt = self.optouts.opted_out([r.number for r in rows])
        return [{"id": r.id, "number": r.number, "name": r.name, "fields": json.loads(r.fields or "{}"),
                 "tags": sorted(tags.get(r.id, ())), "groups": sorted(groups.get(r.id, ())),
                 "opted_out": r.number in out_opt, "created_at": r.created_at, "updated_at": r.updated_at}
                for r in rows]

    def target_contacts(self, kind: str, target: str | Sequence[str], *, after: str | None = None,
                        limit: int = 1000) -> list[dict[str, Any]]:
        """A page (id order) of the contacts a campaign targets: (id, number, name, fields)."""
        c = t.contacts
        q = select(c.c.id, c.c.number, c.c.name, c.c.fields).order_by(c.c.id).limit(limit)
        if after:
            q = q.where(c.c.id > after)
        if kind == "group":
            m = t.contact_group_members
            q = q.where(c.c.id.in_(select(m.c.contact_id).where(m.c.group_id == target)))
        elif kind == "tag":
            q = q.where(c.c.id.in_(select(t.contact_tags.c.contact_id).where(t.contact_tags.c.tag == target)))
        elif kind == "contacts":
            q = q.where(c.c.id.in_(list(target)))
        else:
            raise ValueError(f"unknown target kind {kind!r}")
        with self.db.read() as conn:
            return [{"id": r.id, "number": r.number, "name": r.name, "fields": json.loads(r.fields or "{}")}
                    for r in conn.execute(q).all()]


__all__ = ["ContactIn", "ContactsRepo", "UpsertResult"]
