"""CSV import: bad rows are reported with their row number and reason, never dropped;
every data row lands in exactly one bucket; BOM, ';' delimiter, duplicates within the
file and against existing contacts (update or skip); through the store on SQLite and
PostgreSQL and through the HTTP API."""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path
from typing import Any

import pytest

from gsmgw.campaigns import ColumnMapping, ContactsService, ImportOptions
from gsmgw.campaigns.csvimport import CsvReader
from gsmgw.config import CampaignsConfig, Config
from gsmgw.errors import ValidationError
from gsmgw.store import Store
from tests.helpers import make_config, running_gateway


def _read_all(data: bytes, **opts: Any) -> tuple[list[Any], list[Any], list[Any], int, int]:
    reader = CsvReader(data, ImportOptions(**opts))
    contacts, errors, dups, blank, rows = [], [], [], 0, 0
    while (chunk := reader.next_chunk(2)) is not None:  # tiny chunks: dedup spans chunks
        contacts += chunk.contacts
        errors += chunk.errors
        dups += chunk.duplicates
        blank += chunk.blank
        rows += chunk.rows
    return contacts, errors, dups, blank, rows


BAD = (
    "phone,name,city,tags\n"
    "+447700900001,Ann,Leeds,vip|new\n"       # row 2 ok
    "not-a-number,Bob,York,\n"                 # row 3 bad number
    "07700900002,Cat,Hull,\n"                  # row 4 national: ok with region GB
    "+447700900001,Ann again,Leeds,\n"         # row 5 duplicate of row 2
    "\n"                                       # row 6 blank: counted as blank
    ",Dan,Bath,\n"                             # row 7 no number
    "+447700900003\n"                          # row 8 short row: number only (fine, fields empty)
    "+447700900004,Eve,Ely,x,extra\n"          # row 9 more columns than the header
    "+1 (555) 010-0005,Fay,Rye,\n"             # row 10 punctuated international: ok
    "+44770090000123456789012345678901234,G,,\n"  # row 11 too long
)


def test_bad_rows_are_reported_with_row_and_reason_and_every_row_is_counted() -> None:
    contacts, errors, dups, blank, rows = _read_all(BAD.encode(), default_region="GB")
    assert [c.number for c in contacts] == ["+447700900001", "+447700900002", "+447700900003", "+15550100005"]
    assert {e.row: e.reason for e in errors} == {
        3: "not a phone number", 7: "no number", 9: "5 columns, the header has 4", 11: "not a phone number"}
    assert errors[0].value == "not-a-number"
    assert [(d.row, d.number, d.duplicate_of) for d in dups] == [(5, "+447700900001", 2)]
    assert (blank, rows) == (1, 10)
    assert len(contacts) + len(errors) + len(dups) + blank == rows
    ann = contacts[0]
    assert ann.name == "Ann" and ann.fields == {"city": "Leeds"} and ann.tags == ("new", "vip")
    assert contacts[2].fields == {} and contacts[2].name == ""


def test_national_numbers_without_a_region_are_refused_with_that_reason() -> None:
    _c, errors, *_ = _read_all(b"number\n07700900002\n+447700900001\n")
    assert [(e.row, e.reason) for e in errors] == [(2, "a national number and no default_region to read it in")]


def test_bom_and_semicolon_delimiter_are_read() -> None:
    data = "\ufeffNumber;Name;Betrag\n+49 151 12345678;Jörg;12,50\n".encode()
    reader = CsvReader(data, ImportOptions())
    assert reader.delimiter == ";" and reader.header == ["Number", "Name", "Betrag"]
    contacts, errors, *_ = _read_all(data)
    assert not errors
    assert contacts[0].number == "+4915112345678" and contacts[0].name == "Jörg"
    assert contacts[0].fields == {"Betrag": "12,50"}


def test_a_mapped_column_missing_from_the_header_is_an_error_naming_it() -> None:
    with pytest.raises(ValidationError) as e:
        CsvReader(b"tel,name\n+15550100001,A\n", ImportOptions(mapping=ColumnMapping(number="mobile")))
    assert e.value.code == "missing_column" and "'mobile'" in e.value.message and "'tel'" in e.value.message
    with pytest.raises(ValidationError) as e:
        CsvReader(b"who,name\n+15550100001,A\n", ImportOptions())
    assert e.value.code == "missing_column" and e.value.field == "number"
    with pytest.raises(ValidationError) as e:
        CsvReader(b"number,first name\n+15550100001,A\n", ImportOptions())
    assert e.value.code == "invalid_mapping"  # "first name" cannot be a template variable


def test_mapping_picks_number_name_fields_tags_and_groups_columns() -> None:
    data = b"Mobile,Full,City,Plan,Labels,Teams,Ignored\n+15550100001,Ann,Oslo,gold,a;b,x|y,zzz\n"
    m = ColumnMapping(number="mobile", name="full", fields=("City", "Plan"), tags="labels", groups="teams")
    contacts, errors, *_ = _read_all(data, mapping=m, group="imported", tags=("march",))
    assert not errors
    c = contacts[0]
    assert (c.number, c.name, c.fields) == ("+15550100001", "Ann", {"City": "Oslo", "Plan": "gold"})
    assert c.tags == ("a", "b", "march") and c.groups == ("imported", "x", "y")


def test_not_utf8_empty_and_unclosed_quote() -> None:
    with pytest.raises(ValidationError) as e:
        CsvReader("number,name\n+15550100001,J\xf6rg\n".encode("latin-1"), ImportOptions())
    assert e.value.code == "invalid_csv" and "line 2" in e.value.message
    with pytest.raises(ValidationError):
        CsvReader(b"", ImportOptions())
    contacts, errors, _d, _b, rows = _read_all(b'number,name\n+15550100001,"Ann\n+15550100002,Bob\n')
    assert rows == len(contacts) + len(errors) and errors and "unreadable" in errors[-1].reason


@pytest.fixture
def service(store: Store) -> ContactsService:
    return ContactsService(store, lambda: Config())


async def test_dedup_against_existing_contacts_update_or_skip(store: Store, service: ContactsService) -> None:
    first = b"number,name,city,tags\n+15550100001,Ann,Oslo,a\n+15550100002,Bob,Rome,\n"
    r = await service.import_csv(first, ImportOptions(group="g1"))
    assert (r.rows, r.created, r.updated, r.skipped) == (2, 2, 0, 0)
    again = b"number,name,zip,tags\n+15550100001,Ann B,0150,b\n+15550100003,Cat,,\n"
    r = await service.import_csv(again, ImportOptions(on_duplicate="skip"))
    assert (r.created, r.updated, r.skipped, r.skipped_numbers) == (1, 0, 1, ["+15550100001"])
    ann = await store.call(store.contacts.get_contact_by_number, "+15550100001")
    assert ann["name"] == "Ann" and ann["fields"] == {"city": "Oslo"}
    r = await service.import_csv(again, ImportOptions(on_duplicate="update", group="g2"))
    assert (r.created, r.updated, r.skipped) == (0, 2, 0)
    ann = await store.call(store.contacts.get_contact_by_number, "+15550100001")
    assert ann["name"] == "Ann B" and ann["fields"] == {"city": "Oslo", "zip": "0150"}
    assert ann["tags"] == ["a", "b"] and ann["groups"] == ["g1", "g2"]
    assert await store.call(store.contacts.count_contacts) == 3


async def test_opt_out_status_is_joined_not_copied(store: Store, service: ContactsService) -> None:
    await service.import_csv(b"number\n+15550100001\n+15550100002\n", ImportOptions())

    async def status() -> dict[str, bool]:
        return {c["number"]: c["opted_out"] for c in await store.call(store.contacts.list_contacts)}

    assert await status() == {"+15550100001": False, "+15550100002": False}
    await store.call(store.optouts.add_optout, "15550100002")  # another rendering of the number
    assert await status() == {"+15550100001": False, "+15550100002": True}
    await store.call(store.optouts.remove_optout, "+15550100002")
    assert await status() == {"+15550100001": False, "+15550100002": False}


async def test_export_round_trips(store: Store, service: ContactsService) -> None:
    await service.import_csv("number,name,city,tags\n+15550100001,\"Ann, Jr\",Zürich,a|b\n+15550100002,Bob,,\n"
                             .encode(), ImportOptions(tags=()))
    out = b"".join([c async for c in service.export_csv()]).decode()
    rows = sorted(csv.DictReader(io.StringIO(out)), key=lambda r: r["number"])
    assert rows[0] == {"number": "+15550100001", "name": "Ann, Jr", "groups": "", "tags": "a|b", "opted_out": "",
                       "city": "Zürich"}
    r = await service.import_csv(out.encode(), ImportOptions(on_duplicate="update",
                                                             mapping=ColumnMapping(fields=("city",))))
    assert (r.invalid, r.updated) == (0, 2)


async def test_export_defuses_spreadsheet_formulas_and_import_takes_them_back(
        store: Store, service: ContactsService) -> None:
    """CSV injection: a name or field that a spreadsheet would run as a formula is written
    with a leading apostrophe; importing the export gives the original text back."""
    src = ('number,name,note,tags\n+15550100001,"=HYPERLINK(""http://x"",""y"")",@SUM(A1),-x\n'
           '+15550100002,+plain,ok,\n')
    await service.import_csv(src.encode(), ImportOptions(tags=()))
    out = b"".join([c async for c in service.export_csv()]).decode()
    rows = {r["number"]: r for r in csv.DictReader(io.StringIO(out))}
    assert rows["+15550100001"]["name"] == "'=HYPERLINK(\"http://x\",\"y\")"
    assert rows["+15550100001"]["note"] == "'@SUM(A1)" and rows["+15550100001"]["tags"] == "'-x"
    assert rows["+15550100002"]["name"] == "'+plain" and rows["+15550100002"]["note"] == "ok"
    assert all(not v.startswith(("=", "+", "-", "@")) for r in rows.values()
               for k, v in r.items() if k != "number")
    await service.import_csv(out.encode(), ImportOptions(on_duplicate="update",
                                                         mapping=ColumnMapping(fields=("note",))))
    back = {c["number"]: c for c in await store.call(store.contacts.list_contacts, after=None, limit=10,
                                                       group_id=None, tag=None)}
    assert back["+15550100001"]["name"] == '=HYPERLINK("http://x","y")'
    assert back["+15550100001"]["fields"] == {"note": "@SUM(A1)"} and "-x" in back["+15550100001"]["tags"]
    assert back["+15550100002"]["name"] == "+plain"


async def test_import_over_http_reports_rows_and_refuses_bad_requests(tmp_path: Path) -> None:
    async with running_gateway(make_config(tmp_path)) as (_gw, c):
        h = {"Content-Type": "text/csv"}
        status, body = await c.request("POST", "/api/v1/contacts/import?default_region=GB", data=BAD.encode(),
                                       headers=h)
        assert status == 200, body
        assert (body["rows"], body["created"], body["invalid"], body["duplicates"], body["blank"]) == (
            10, 4, 4, 1, 1)
        assert {e["row"] for e in body["errors"]} == {3, 7, 9, 11}
        assert body["duplicate_rows"] == [{"row": 5, "number": "+447700900001", "duplicate_of": 2}]
        status, body = await c.request("POST", "/api/v1/contacts/import?number=mobile", data=b"tel\n+1555\n",
                                       headers=h)
        assert status == 422 and body["error"]["code"] == "missing_column"
        status, body = await c.request("POST", "/api/v1/contacts/import?on_duplicate=maybe", data=b"number\n",
                                       headers=h)
        assert status == 422 and body["error"]["code"] == "invalid_query"
        status, body = await c.request("POST", "/api/v1/contacts/import", json={"number": "+15550100001"})
        assert status == 422 and body["error"]["code"] == "invalid_csv"
        seen, cursor = [], ""
        while True:
            status, body = await c.request("GET", f"/api/v1/contacts?limit=3{cursor}")
            assert status == 200
            seen += [x["number"] for x in body["items"]]
            if body["next_cursor"] is None:
                break
            cursor = f"&cursor={body['next_cursor']}"
        assert sorted(seen) == ["+15550100005", "+447700900001", "+447700900002", "+447700900003"]
        status, _ = await c.request("POST", "/api/v1/contacts/import", data=b"number\n+15550100001\n",
                                    headers=h, key=None)
        assert status == 401


async def test_import_too_large_or_empty_is_refused_and_stores_nothing(tmp_path: Path) -> None:
    cfg = dataclasses.replace(make_config(tmp_path), campaigns=CampaignsConfig(import_max_bytes=1024))
    async with running_gateway(cfg) as (gw, c):
        h = {"Content-Type": "text/csv"}
        big = ("number\n" + "".join(f"+1555010{i:04d}\n" for i in range(200))).encode()
        status, body = await c.request("POST", "/api/v1/contacts/import", data=big, headers=h)
        assert status == 413 and body["error"]["code"] == "body_too_large", body

        async def chunked() -> Any:  # no Content-Length: the limit still holds
            for i in range(0, len(big), 100):
                yield big[i:i + 100]

        status, body = await c.request("POST", "/api/v1/contacts/import", data=chunked(), headers=h)
        assert status == 413, body
        status, body = await c.request("POST", "/api/v1/contacts/import", data=b"", headers=h)
        assert status == 422 and body["error"]["code"] == "invalid_csv"
        assert await gw.store.call(gw.store.contacts.count_contacts) == 0
