"""The request models (gsmgw.api.schemas): a failure reads as it did before pydantic
(the codes, messages and fields callers parse), and the OpenAPI document is
rendered from the same models."""

from __future__ import annotations

from typing import Any

import pytest

from gsmgw.api import schemas
from gsmgw.api.openapi import document, openapi30
from gsmgw.api.schemas import parse, query
from gsmgw.errors import ValidationError

N = "+15551234567"


@pytest.mark.parametrize(("body", "code", "field", "message"), [
    ({"to": 5, "text": 5}, "invalid_text", "text", "text must be a non-empty string"),
    ({"text": "x"}, "invalid_number", "to", "a phone number must be a non-empty string"),
    ({"to": [None], "text": "x"}, "invalid_number", "to", "a phone number must be a non-empty string"),
    ({"to": [], "text": "x"}, "invalid_number", "to", "give 1 to 1000 recipients"),
    ({"to": [N] * 1001, "text": "x"}, "invalid_number", "to", "give 1 to 1000 recipients"),
    ({"to": "x" * 33, "text": "x"}, "invalid_number", "to", "number is too long"),
    ({"to": [{"variables": {}}], "template": "x"}, "invalid_number", "to[0].to",
     "a phone number must be a non-empty string"),
    ({"to": [{"to": N, "colour": "red"}], "template": "x"}, "unknown_field", "to[0]",
     "a recipient object has only to and variables"),
    ({"to": [{"to": N, "variables": {"a": [1]}}], "template": "x"}, "invalid_variables", "to[0].variables",
     "variable 'a' must be a string or a number"),
    ({"to": N, "text": "x" * 10_001}, "text_too_long", "text", "text is longer than 10000 characters"),
    ({"to": N, "template": ""}, "invalid_text", "template", "template must be a non-empty string"),
    ({"to": N, "template": "{a}", "variables": {"a": None}}, "invalid_variables", "variables",
     "variable 'a' must be a string or a number"),
    ({"to": N, "template": "{a}", "variables": {str(i): 1 for i in range(101)}}, "invalid_variables", "variables",
     "variables must be an object of at most 100 names"),
    ({"to": N, "text": "x", "priority": 1.5}, "invalid_field", "priority",
     "priority must be an integer from -10 to 10 or one of low, normal, high, otp"),
    ({"to": N, "text": "x", "priority": True}, "invalid_field", "priority",
     "priority must be an integer from -10 to 10 or one of low, normal, high, otp"),
    ({"to": N, "text": "x", "send_at": 5}, "invalid_time", "send_at", "send_at must be an ISO 8601 string"),
    ({"to": N, "text": "x", "ttl": True}, "invalid_field", "ttl", "ttl must be seconds, from 1 to 2592000"),
    ({"to": N, "text": "x", "ttl": 0}, "invalid_field", "ttl", "ttl must be seconds, from 1 to 2592000"),
    ({"to": N, "text": "x", "sim": 5}, "unknown_sim", "sim", "no modem with id 5"),
    ({"to": N, "text": "x", "flash": None}, "invalid_field", "flash", "flash must be true or false"),
    ({"to": N, "text": "x", "delivery_report": "true"}, "invalid_field", "delivery_report",
     "delivery_report must be true or false"),
    ({"to": N, "text": "x", "callback_url": 5}, "invalid_callback", "callback_url", "callback_url must be a string"),
    ({"to": N, "text": "x", "b": 1, "a": 2, "flash": "no"}, "unknown_field", None, "unknown field(s): a, b"),
])
def test_send_request_failures_read_as_before(body: dict[str, Any], code: str, field: str | None,
                                              message: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse(schemas.SendRequest, body)
    assert (err.value.code, err.value.field, err.value.message) == (code, field, message)


def test_a_valid_send_request_keeps_its_values() -> None:
    body = parse(schemas.SendRequest, {"to": [N, {"to": N, "variables": {"n": 1}}], "template": "{n}", "ttl": 60,
                                       "priority": "otp", "variables": {"n": 2.5}})
    assert body.to[0] == N and isinstance(body.to[1], schemas.Recipient) and body.to[1].variables == {"n": 1}
    assert body.ttl == 60.0 and body.priority == "otp" and body.variables == {"n": 2.5}
    assert body.delivery_report is None and body.flash is False  # absent: the gateway's defaults


@pytest.mark.parametrize(("model", "q", "code", "field", "message"), [
    (schemas.MessagesQuery, {"limit": "abc"}, "invalid_query", "limit", "limit must be an integer"),
    (schemas.MessagesQuery, {"limit": "501"}, "invalid_query", "limit", "limit must be from 1 to 500"),
    (schemas.MessagesQuery, {"state": "nope"}, "invalid_query", "state", "unknown state 'nope'"),
    (schemas.InboxQuery, {"complete": "yes"}, "invalid_query", "complete", "complete must be true or false"),
    (schemas.InboxQuery, {"from": "a" * 33}, "invalid_query", "from", "from must be 1-32 printable characters"),
    (schemas.OptOutsQuery, {"limit": "0"}, "invalid_query", "limit", "limit must be from 1 to 1000"),
    (schemas.DeliveriesQuery, {"cursor": "²"}, "invalid_query", "cursor", "cursor must be an integer of 1-18 digits"),
    (schemas.EventsQuery, {"after": "-1"}, "invalid_query", "after", "after must be an event id (an integer of 1-18 digits)"),
])
def test_query_failures_read_as_before(model: type[schemas.Query], q: dict[str, str], code: str, field: str,
                                       message: str) -> None:
    with pytest.raises(ValidationError) as err:
        query(model, q)
    assert (err.value.code, err.value.field, err.value.message) == (code, field, message)


def test_queries_default_and_refuse_other_parameters() -> None:
    q = query(schemas.InboxQuery, {"from": "+4477"})
    assert (q.limit, q.from_, q.complete) == (50, "+4477", None)
    assert query(schemas.EventsQuery, {}).after == "0"
    with pytest.raises(ValidationError) as err:  # #15: refused as unknown body fields are
        query(schemas.InboxQuery, {"from": "+4477", "utm": "x"})
    assert (err.value.code, err.value.field) == ("unknown_parameter", "utm")


def test_other_bodies() -> None:
    with pytest.raises(ValidationError) as err:
        parse(schemas.ModemPatch, {"enabled": True, "x": 1})
    assert (err.value.code, err.value.message) == ("invalid_field", 'send {"enabled": true|false}')
    with pytest.raises(ValidationError) as err:
        parse(schemas.UssdRequest, {"code": "*1٣#"})  # a non-ASCII digit never reaches the modem
    assert (err.value.code, err.value.field) == ("invalid_ussd", "code")
    assert parse(schemas.OptOutRequest, {"number": N}).note == ""
    assert parse(schemas.PreviewRequest, {"text": "x", "extra": 1}).text == "x"  # extra fields ignored, as before


def test_the_document_is_rendered_from_the_models() -> None:
    doc = document()
    send = doc["components"]["schemas"]["SendRequest"]
    assert send["additionalProperties"] is False and send["required"] == ["to"]
    assert set(send["properties"]) == set(schemas.SendRequest.model_fields)
    assert send["properties"]["ttl"]["minimum"] == 1 and send["properties"]["ttl"]["nullable"] is True
    assert send["properties"]["to"]["oneOf"][1]["maxItems"] == 1000
    assert doc["components"]["schemas"]["Recipient"]["required"] == ["to"]
    params = doc["paths"]["/api/v1/inbox"]["get"]["parameters"]
    assert [p["name"] for p in params] == ["limit", "complete", "since", "from", "sim", "cursor", "tag"]
    assert params[0]["schema"] == {"default": 50, "maximum": 500, "minimum": 1, "type": "integer"}


def test_openapi30_conversion() -> None:
    assert openapi30({"anyOf": [{"type": "string", "maxLength": 3}, {"type": "null"}], "title": "T",
                      "default": None}) == {"type": "string", "maxLength": 3, "nullable": True}
    assert openapi30({"anyOf": [{"$ref": "#/x"}, {"type": "null"}]}) == {"allOf": [{"$ref": "#/x"}],
                                                                          "nullable": True}
    assert openapi30({"type": "number", "exclusiveMinimum": 0}) == {"type": "number", "minimum": 0,
                                                                    "exclusiveMinimum": True}
    assert openapi30({"const": "a"}) == {"enum": ["a"]}
    # A property called "title" is a name, not a keyword.
    assert openapi30({"properties": {"title": {"type": "string", "title": "Title"}}}) == {
        "properties": {"title": {"type": "string"}}}
