"""ONE Record LogisticsEvent parser on events shaped like the ONE Record data model and API
documentation (IATA-Cargo/ONE-Record: LogisticsEvent with eventCode as CodeListElement, eventDate
as typed xsd:dateTime, eventFor linking the logistics object; the API 2.x linkedObject form)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from producers.formats import FormatError
from producers.formats.iata_onerecord import parse
from producers.formats.identifiers import parse_timestamp


def test_graph_document_resolves_linked_waybill_and_location(fixture_bytes: Callable[[str], bytes]) -> None:
    result = parse(fixture_bytes("iata_onerecord_events.jsonld"), "events.jsonld")
    assert result.issues == []
    arrived, cleared = (record.value for record in result.records)
    assert arrived["event_id"].endswith("/logistics-events/0f8c2a")
    assert arrived["handling_unit"] == arrived["references"]["awb"] == "157-12345675"
    assert (arrived["code"], arrived["raw_code"], arrived["raw_format"]) == (
        "LINEHAUL_ARRIVED",
        "ARR",
        "iata-onerecord",
    )
    assert arrived["event_time_ms"] == parse_timestamp("2024-10-20T08:05:00Z").epoch_ms
    assert arrived["recorded_time_ms"] == parse_timestamp("2024-10-20T08:07:12Z").epoch_ms
    assert arrived["location"]["code"] == "LGG" and arrived["location"]["kind"] == "airport"
    assert cleared["code"] == "IMPORT_CUSTOMS_CLEARED"
    assert cleared["reason"] == "partial event: applies to part of the shipment"


def test_single_event_with_vocab_names_and_linked_object() -> None:
    event = {
        "@context": {"@vocab": "https://onerecord.iata.org/ns/cargo#"},
        "@type": "LogisticsEvent",
        "eventCode": {"@id": "https://onerecord.iata.org/ns/coreCodeLists#StatusCode_DEP"},
        "eventDate": "2024-10-20T02:15:00+08:00",
        "linkedObject": {"@type": "Shipment", "@id": "https://1r.example.com/logistics-objects/mawb157-12345675"},
    }
    (record,) = parse(json.dumps(event).encode(), "one.json", carrier="CK").records
    assert record.value["raw_code"] == "DEP"
    assert record.value["handling_unit"] == "157-12345675"
    assert record.value["carrier"] == "CK"
    # no @id: the id is a hash of the content, the same on every re-send
    assert record.value["event_id"] == parse(json.dumps(event).encode(), "again.json").records[0].value["event_id"]


def test_uld_and_plain_object_subjects() -> None:
    events = [
        {
            "@type": "cargo:LogisticsEvent",
            "cargo:eventCode": "RCF",
            "cargo:eventDate": "2024-10-20T10:30:00+02:00",
            "cargo:eventFor": {
                "@type": "cargo:ULD",
                "cargo:uldTypeCode": "AKE",
                "cargo:uldSerialNumber": "12345",
                "cargo:ownerCode": "CK",
            },
        },
        {
            "@type": "cargo:LogisticsEvent",
            "cargo:eventCode": "FOH",
            "cargo:eventDate": "2024-10-20T10:30:00+02:00",
            "cargo:eventFor": {"@id": "https://1r.example.com/logistics-objects/piece-42"},
        },
    ]
    uld, piece = (r.value for r in parse(json.dumps(events).encode(), "list.json").records)
    assert uld["handling_unit"] == uld["references"]["uld"] == "AKE12345CK"
    assert piece["handling_unit"] == "PIECE-42"  # the last segment of its @id


def test_errors_name_event_and_field() -> None:
    base = {"@type": "cargo:LogisticsEvent", "cargo:eventDate": "2024-10-20T10:30:00+02:00",
            "cargo:eventCode": "DEP", "cargo:eventFor": {"@id": "https://x/lo/awb-157-12345675"}}  # fmt: skip
    events = [
        {**base, "cargo:eventCode": "XXX"},
        {**base, "cargo:eventDate": "2024-10-20T10:30:00"},
        {**base, "cargo:eventFor": {"@id": "https://x/lo/awb-157-12345670"}},
        {k: v for k, v in base.items() if k != "cargo:eventFor"},
        {**base, "cargo:eventTimeType": {"@id": "cargo:PLANNED"}},
        {"@type": "cargo:Waybill"},
    ]
    result = parse(json.dumps(events).encode(), "bad.json")
    assert result.records == []
    assert [(i.reference, i.field, i.reason_code) for i in result.issues] == [
        ("bad.json event 1", "[0].eventCode", "unknown_code"),
        ("bad.json event 2", "[1].eventDate", "malformed_record"),
        ("bad.json event 3", "[2].eventFor", "malformed_record"),
        ("bad.json event 4", "[3].eventFor", "malformed_record"),
        ("bad.json event 5", "[4].eventTimeType", "unsupported_record"),
        ("bad.json event 6", "[5].@type", "unsupported_record"),
    ]
    assert "mod-7" in result.issues[2].message


@pytest.mark.parametrize("document", [b"not json", b'"a string"', b"\xff\xfe"])
def test_unreadable_documents(document: bytes) -> None:
    with pytest.raises(FormatError):
        parse(document, "x.json")


# --- issue 19: constructs of the ONE Record specification's and implementers' examples ---------

CARGO = "https://onerecord.iata.org/ns/cargo#"


def one_event(**fields: object) -> dict[str, object]:
    event: dict[str, object] = {
        "@type": "cargo:LogisticsEvent",
        "cargo:eventCode": {"@id": "https://onerecord.iata.org/ns/code-lists/StatusCode#ARR"},
        "cargo:eventDate": {"@type": "http://www.w3.org/2001/XMLSchema#dateTime", "@value": "2026-11-20T16:40:00Z"},
        "cargo:eventFor": {"@id": "https://or.example/logistics-objects/awb-157-33806275"},
    }
    event.update(fields)
    return {k: v for k, v in event.items() if v is not None}


def test_a_servers_event_list_is_read() -> None:
    collection = {
        "@context": {"cargo": CARGO, "api": "https://onerecord.iata.org/ns/api#"},
        "@type": "api:Collection",
        "api:hasTotalItems": 2,
        "api:hasItem": [one_event(), one_event(**{"cargo:eventCode": "RCF"})],
    }
    result = parse(json.dumps(collection).encode(), "list.json")
    assert result.issues == []
    assert [r.value["raw_code"] for r in result.records] == ["ARR", "RCF"]
    single = {**collection, "api:hasItem": one_event()}  # one item: an object, not a list
    assert [r.value["raw_code"] for r in parse(json.dumps(single).encode(), "one.json").records] == ["ARR"]


def test_an_event_for_several_objects_gives_a_scan_each() -> None:
    objects = [{"@id": "https://or.example/logistics-objects/Piece-1"}, {"@id": "https://or.example/lo/Piece-2"}]
    event = one_event(**{"@id": "https://or.example/logistics-events/e9", "cargo:eventFor": objects})
    scans = [r.value for r in parse(json.dumps(event).encode(), "x.json").records]
    assert [s["handling_unit"] for s in scans] == ["PIECE-1", "PIECE-2"]
    assert [s["event_id"] for s in scans] == [
        "https://or.example/logistics-events/e9|PIECE-1",
        "https://or.example/logistics-events/e9|PIECE-2",
    ]


@pytest.mark.parametrize("flag", [{"@type": "http://www.w3.org/2001/XMLSchema#boolean", "@value": "true"}, True])
def test_typed_literal_partial_event_flag(flag: object) -> None:
    (record,) = parse(json.dumps(one_event(**{"cargo:partialEventIndicator": flag})).encode(), "x.json").records
    assert record.value["reason"] == "partial event: applies to part of the shipment"
    false = {"@type": "http://www.w3.org/2001/XMLSchema#boolean", "@value": "false"}
    (whole,) = parse(json.dumps(one_event(**{"cargo:partialEventIndicator": false})).encode(), "x.json").records
    assert whole.value["reason"] is None


def test_an_event_without_event_for_is_about_the_object_its_id_names_and_recorded_at_location() -> None:
    event = one_event(
        **{
            "@id": "https://or.example/logistics-objects/awb-157-33806275/logistics-events/arr-1",
            "cargo:eventFor": None,
            "cargo:recordedAtLocation": {"@id": "https://or.example/logistics-objects/HEL"},
        }
    )
    (record,) = parse(json.dumps(event).encode(), "x.json").records
    assert record.value["handling_unit"] == "157-33806275"
    assert record.value["location"] == {
        "code": "HEL",
        "kind": "airport",
        "country": "FI",
        "name": "Helsinki Vantaa Airport",
    }


def test_status_update_event_subtype_is_an_event() -> None:
    (record,) = parse(json.dumps(one_event(**{"@type": "cargo:StatusUpdateEvent"})).encode(), "x.json").records
    assert record.value["code"] == "LINEHAUL_ARRIVED"
