"""Reading contacts from CSV (pure: no I/O but the bytes given, no asyncio).

``CsvReader`` decodes the file (UTF-8, a byte-order mark is dropped), finds the
delimiter (``,`` ``;`` or tab, from the header line, unless given), checks the
column mapping against the header, and then hands out chunks of rows as
:class:`~gsmgw.store.contacts.ContactIn` values. Every data row ends up counted in
exactly one bucket: a contact, an invalid row (its row number and why), a
duplicate of an earlier row of the file (the first one wins), or a blank line.
Row numbers are those a spreadsheet shows: the header is row 1.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gsmgw.errors import ValidationError
from gsmgw.numbers import to_e164
from gsmgw.store.contacts import ContactIn

MAX_NAME_CHARS = 200
MAX_FIELD_CHARS = 1000
MAX_FIELDS = 50
MAX_TAG_CHARS = 64
MAX_GROUP_CHARS = 100
MAX_NUMBER_CHARS = 32
# Header names taken as the number column when the mapping names none.
NUMBER_HEADERS = ("number", "phone", "mobile", "msisdn", "telephone", "tel", "phone_number", "cell")
LIST_SPLIT = re.compile(r"[|,;]")
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
csv.field_size_limit(1 << 20)


@dataclass(frozen=True, slots=True)
class ColumnMapping:
    """Which column is what, by header name. ``fields`` None = every column that is
    not the number, name, tags or groups column (a field named as its header)."""

    number: str | None = None  # None: the first of NUMBER_HEADERS found
    name: str | None = None  # None: "name" if there is such a column
    fields: tuple[str, ...] | None = None
    tags: str | None = None  # a column of tags separated by | , or ; (None: "tags" if there is one)
    groups: str | None = None  # a column of group names separated by | (None: "groups" or "group")


@dataclass(frozen=True, slots=True)
class ImportOptions:
    mapping: ColumnMapping = field(default_factory=ColumnMapping)
    default_region: str | None = None  # where national numbers are read (ISO 3166, e.g. "GB")
    on_duplicate: str = "update"  # update | skip: a number that is already a contact
    delimiter: str | None = None  # None: from the header line
    group: str | None = None  # put every imported contact in this group too
    tags: tuple[str, ...] = ()  # and give it these tags


@dataclass(frozen=True, slots=True)
class RowError:
    row: int
    reason: str
    value: str = ""


@dataclass(frozen=True, slots=True)
class Duplicate:
    row: int
    number: str
    duplicate_of: int


@dataclass(slots=True)
class Chunk:
    contacts: list[ContactIn]
    errors: list[RowError]
    duplicates: list[Duplicate]
    blank: int
    rows: int  # data rows read in this chunk


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ValidationError("invalid_csv", f"the file is not UTF-8 text (line {line}, byte {exc.start}); "
                              "save it as CSV UTF-8", field="file") from None


def _sniff(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


# A cell that starts with one of these is a formula to a spreadsheet (CSV injection):
# export writes such text cells with a leading apostrophe, and import takes it off again.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(v: str) -> str:
    """A text cell made safe to open in a spreadsheet (phone numbers are not passed here)."""
    return "'" + v if v.startswith(FORMULA_START) else v


def _cell(v: str) -> str:
    v = v.strip()
    return v[1:] if v.startswith("'") and v[1:2].startswith(FORMULA_START) and v[1:2] else v


class CsvReader:
    """One file being read; ``next_chunk`` is called until it returns None."""

    def __init__(self, data: bytes, options: ImportOptions) -> None:
        self.options = options
        text = _decode(data)
        if "\x00" in text:
            raise ValidationError("invalid_csv", "the file contains NUL characters: not a CSV text file",
                                  field="file")
        first_line = text.split("\n", 1)[0]
        delimiter = options.delimiter or _sniff(first_line)
        if delimiter not in (",", ";", "\t", "|"):
            raise ValidationError("invalid_csv", "delimiter must be , ; | or tab", field="delimiter")
        self.delimiter = delimiter
        self._reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
        try:
            header = next(self._reader)
        except StopIteration:
            raise ValidationError("invalid_csv", "the file is empty: no header row", field="file") from None
        except csv.Error as exc:
            raise ValidationError("invalid_csv", f"row 1: {exc}", field="file") from None
        self.header = [_cell(h) for h in header]
        if not any(self.header):
            raise ValidationError("invalid_csv", "the header row (row 1) is empty", field="file")
        self._columns = self._map(options.mapping)
        self._row = 1
        self._done = False
        self._seen: dict[str, int] = {}
        self._region = (options.default_region or "").upper() or None

    def _index(self, name: str, what: str) -> int:
        lowered = [h.lower() for h in self.header]
        if name.lower() not in lowered:
            raise ValidationError("missing_column", f"the {what} column {name!r} is not in the header "
                                  f"(columns: {', '.join(repr(h) for h in self.header)})", field=what)
        return lowered.index(name.lower())

    def _map(self, m: ColumnMapping) -> dict[str, Any]:
        lowered = [h.lower() for h in self.header]
        if m.number is not None:
            number = self._index(m.number, "number")
        else:
            found = [lowered.index(h) for h in NUMBER_HEADERS if h in lowered]
            if not found:
                raise ValidationError("missing_column", "no number column: name it with the mapping (number=...) "
                                      f"or call it one of {', '.join(NUMBER_HEADERS)} "
                                      f"(columns: {', '.join(repr(h) for h in self.header)})", field="number")
            number = found[0]
        name = self._index(m.name, "name") if m.name is not None else (
            lowered.index("name") if "name" in lowered else None)
        tags = self._index(m.tags, "tags") if m.tags is not None else (
            lowered.index("tags") if "tags" in lowered else None)
        groups = self._index(m.groups, "groups") if m.groups is not None else next(
            (lowered.index(h) for h in ("groups", "group") if h in lowered), None)
        taken = {number, name, tags, groups}
        if m.fields is not None:
            fields = [self._index(f, "fields") for f in m.fields]
        else:
            fields = [i for i, h in enumerate(self.header) if i not in taken and h]
        names = [self.header[i] for i in fields]
        if len(fields) > MAX_FIELDS:
            raise ValidationError("invalid_mapping", f"at most {MAX_FIELDS} field columns", field="fields")
        bad = [n for n in names if not NAME_RE.match(n)]
        if bad:
            raise ValidationError("invalid_mapping", f"field column {bad[0]!r} cannot be a template variable: "
                                  "use letters, digits and _ (map fields= to choose columns)", field="fields")
        if len({n.lower() for n in names}) != len(names):
            raise ValidationError("invalid_mapping", "two field columns have the same name", field="fields")
        return {"number": number, "name": name, "tags": tags, "groups": groups,
                "fields": list(zip(fields, names, strict=True))}

    def next_chunk(self, n: int) -> Chunk | None:
        """Up to ``n`` data rows; None when the file is done."""
        chunk = Chunk([], [], [], 0, 0)
        while chunk.rows < n and not self._done:
            try:
                cells = next(self._reader)
            except StopIteration:
                self._done = True
                break
            except csv.Error as exc:  # e.g. an unclosed quote: the rest of the file is one cell
                self._row += 1
                chunk.rows += 1
                chunk.errors.append(RowError(self._row, f"unreadable CSV ({exc}); the rest of the file was not read"))
                self._done = True
                break
            self._row += 1
            chunk.rows += 1
            self._one(cells, chunk)
        return chunk if chunk.rows else None

    def _one(self, cells: Sequence[str], chunk: Chunk) -> None:
        row = self._row
        cols = self._columns
        if not any(c.strip() for c in cells):
            chunk.blank += 1
            return
        width = len(self.header)
        if len(cells) > width and any(c.strip() for c in cells[width:]):
            chunk.errors.append(RowError(row, f"{len(cells)} columns, the header has {width}"))
            return
        if cols["number"] >= len(cells):
            chunk.errors.append(RowError(row, f"missing column {self.header[cols['number']]!r} "
                                         f"(the row has {len(cells)} of {width} columns)"))
            return
        raw = _cell(cells[cols["number"]])
        if not raw:
            chunk.errors.append(RowError(row, "no number"))
            return
        number = to_e164(raw, self._region) if len(raw) <= MAX_NUMBER_CHARS else None
        if number is None:
            why = ("a national number and no default_region to read it in"
                   if not raw.lstrip().startswith(("+", "00")) and self._region is None else "not a phone number")
            chunk.errors.append(RowError(row, why, raw[:64]))
            return
        first = self._seen.get(number)
        if first is not None:
            chunk.duplicates.append(Duplicate(row, number, first))
            return

        def get(i: int | None) -> str:
            return _cell(cells[i]) if i is not None and i < len(cells) else ""

        name = get(cols["name"]) if cols["name"] is not None else None
        if name is not None and len(name) > MAX_NAME_CHARS:
            chunk.errors.append(RowError(row, f"name longer than {MAX_NAME_CHARS} characters"))
            return
        fields: dict[str, str] = {}
        for i, fname in cols["fields"]:
            v = get(i)
            if len(v) > MAX_FIELD_CHARS:
                chunk.errors.append(RowError(row, f"field {fname!r} longer than {MAX_FIELD_CHARS} characters"))
                return
            if v:
                fields[fname] = v
        tags = {*self.options.tags, *(x.strip() for x in LIST_SPLIT.split(get(cols["tags"])) if x.strip())}
        groups = {x.strip() for x in get(cols["groups"]).split("|") if x.strip()}
        if self.options.group:
            groups.add(self.options.group)
        if any(len(x) > MAX_TAG_CHARS for x in tags):
            chunk.errors.append(RowError(row, f"a tag longer than {MAX_TAG_CHARS} characters"))
            return
        if any(len(x) > MAX_GROUP_CHARS for x in groups):
            chunk.errors.append(RowError(row, f"a group name longer than {MAX_GROUP_CHARS} characters"))
            return
        self._seen[number] = row
        chunk.contacts.append(ContactIn(number=number, name=name, fields=fields, tags=tuple(sorted(tags)),
                                        groups=tuple(sorted(groups))))


__all__ = ["Chunk", "ColumnMapping", "CsvReader", "Duplicate", "ImportOptions", "RowError"]
