"""EPCIS 2.0 parser on events following the GS1 EPCIS 2.0 standard's JSON examples (ObjectEvent
with SGTIN epcList, bizStep shipping, readPoint SGLN; AggregationEvent packing SGTINs into an SSCC;
the three bizStep spellings of CBV 2.0)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from producers.formats import FormatError
from producers.formats.gs1_epcis import parse
from producers.formats.identifiers import parse_timestamp


def test_document(fixture_bytes: Callable[[str], bytes]) -> None:
    result = parse(fixture_bytes("gs1_epcis_document.json"), "epcis.json")
    assert result.issues == []
    kinds = [r.kind for r in result.records]
    assert kinds == ["scan", "scan", "manifest", "scan"]
    first, second, manifest, observed = (r.value for r in result.records)

    assert first["tracking_number"] == "SGTIN106141410734642017"
    assert second["tracking_number"] == "SGTIN106141410734642018"
    assert first["event_id"] != second["event_id"]
    # shipping with no destination: the sender's dispatch at the start of the chain
    assert (first["code"], first["raw_code"], first["raw_format"]) == ("ORIGIN_SORTED", "shipping", "gs1-epcis")
    assert first["event_time_ms"] == parse_timestamp("2005-04-04T02:33:31.116Z").epoch_ms
    assert first["utc_offset_minutes"] == -360
    assert first["location"]["code"] == "urn:epc:id:sgln:0614141.07346.1234"

    assert manifest["manifest_id"].startswith("ni:///sha-256;")
    assert manifest["handling_unit"] == "106141412345678908"
    assert manifest["action"] == "add"
    assert manifest["members"] == ["SGTIN106141410734642017", "SGTIN106141410734642018"]
    assert (manifest["unit_type"], manifest["member_type"]) == ("bag", "parcel")
    assert manifest["references"]["bag"] == "106141412345678908"

    assert observed["handling_unit"] == "106141412345678908"  # Digital Link SSCC = the same unit
    assert (observed["code"], observed["raw_code"]) == ("HUB_SORTED", "sorting")
    assert observed["utc_offset_minutes"] == 120


def event(**fields: Any) -> dict[str, Any]:
    base = {"type": "ObjectEvent", "action": "OBSERVE", "bizStep": "receiving", "epcList": ["LP00123456789CN"],
            "eventTime": "2024-10-21T09:00:00+02:00", "eventTimeZoneOffset": "+02:00"}  # fmt: skip
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def test_container_aggregation_of_sscc_bags_and_removal() -> None:
    events = [
        event(
            type="AggregationEvent",
            action="ADD",
            epcList=None,
            parentID="CSQU3054383",
            childEPCs=["urn:epc:id:sscc:0614141.1234567890"],
        ),
        event(type="AggregationEvent", action="DELETE", epcList=None, parentID="BAG-7", childEPCs=["LP00123456789CN"]),
    ]
    result = parse(json.dumps(events).encode(), "x.json")
    added, removed = (r.value for r in result.records)
    assert (added["unit_type"], added["member_type"], added["members"]) == ("container", "bag", ["106141412345678908"])
    assert added["references"]["container"] == "CSQU3054383"
    assert (removed["action"], removed["unit_type"]) == ("remove", "bag")
    # no eventID: a content hash, stable across re-sends
    assert removed["manifest_id"] == parse(json.dumps(events).encode(), "y.json").records[1].value["manifest_id"]


def test_errors_name_event_and_field() -> None:
    document = {
        "type": "EPCISDocument",
        "epcisBody": {
            "eventList": [
                event(bizStep="teleporting"),
                event(bizStep=None),
                event(eventTime="2024-10-21T09:00:00"),
                event(
                    epcList=None,
                    quantityList=[{"epcClass": "urn:epc:class:lgtin:4012345.012345.998877", "quantity": 200}],
                ),
                event(type="TransformationEvent"),
                event(type="AggregationEvent", action="ADD", epcList=None, parentID="BAG-1"),
                event(epcList=["urn:epc:id:sscc:0614141.12"]),
                event(errorDeclaration={"declarationTime": "2024-10-22T00:00:00Z"}),
                "not an event",
            ]
        },
    }
    result = parse(json.dumps(document).encode(), "bad.json")
    assert result.records == []
    path = "epcisBody.eventList"
    assert [(i.field, i.reason_code) for i in result.issues] == [
        (f"{path}[0].bizStep", "unknown_code"),
        (f"{path}[1].bizStep", "malformed_record"),
        (f"{path}[2].eventTime", "malformed_record"),
        (f"{path}[3].epcList", "unsupported_record"),
        (f"{path}[4].type", "unsupported_record"),
        (f"{path}[5].childEPCs", "malformed_record"),
        (f"{path}[6].epcList[0]", "malformed_record"),
        (f"{path}[7].errorDeclaration", "unsupported_record"),
        (f"{path}[8]", "malformed_record"),
    ]
    assert result.issues[0].reference == "bad.json event 1"


@pytest.mark.parametrize("document", [b"[", b"42", b'{"type": "EPCISDocument"}'])
def test_unreadable_documents(document: bytes) -> None:
    with pytest.raises(FormatError):
        parse(document, "x.json")


# --- issue 19: constructs of the GS1 EPCIS examples --------------------------------------------


@pytest.mark.parametrize(
    ("epc", "tracking_number", "handling_unit"),
    [
        ("https://id.gs1.org/00/106141412345678908", None, "106141412345678908"),
        ("https://dl.hub.example/00/540123450000000011?linkType=gs1:traceability", None, "540123450000000011"),
        ("https://example.com/brand/01/05412345678908/21/AB-12", "SGTIN05412345678908AB12", None),
        ("https://id.gs1.org/01/05412345678908/21/x%2F7.b", "SGTIN05412345678908X7B", None),
        ("urn:epc:id:sgtin:5412345.067890.AB-12%2F7", "SGTIN05412345678908AB127", None),
    ],
)
def test_digital_links_on_any_resolver_and_serials_with_gs1_characters(
    epc: str, tracking_number: str | None, handling_unit: str | None
) -> None:
    result = parse(json.dumps(event(epcList=[epc])).encode(), "x.json")
    assert result.issues == []
    (record,) = result.records
    assert (record.value["tracking_number"], record.value["handling_unit"]) == (tracking_number, handling_unit)


def test_one_unusable_epc_is_reported_and_the_others_kept() -> None:
    epcs = ["urn:epc:id:sscc:0614141.1234567890", "urn:epc:id:grai:0614141.12345.400", "not an epc!"]
    result = parse(json.dumps(event(epcList=epcs, eventID="e1")).encode(), "x.json")
    assert [r.value["handling_unit"] for r in result.records] == ["106141412345678908"]
    assert [(i.field, i.reason_code) for i in result.issues] == [
        ("[0].epcList[1]", "unsupported_record"),
        ("[0].epcList[2]", "invalid_identifier"),
    ]


@pytest.mark.parametrize(
    "form",
    ["sorting", "urn:epcglobal:cbv:bizstep:sorting", "https://ref.gs1.org/cbv/BizStep-sorting",
     "gs1:BizStep-sorting", "cbv:BizStep-sorting", "https://gs1.org/voc/BizStep-sorting"],
)  # fmt: skip
def test_every_biz_step_form(form: str) -> None:
    (record,) = parse(json.dumps(event(bizStep=form)).encode(), "x.json").records
    assert (record.value["raw_code"], record.value["code"]) == ("sorting", "HUB_SORTED")


@pytest.mark.parametrize(
    ("destinations", "code"),
    [
        (None, "ORIGIN_SORTED"),  # the sender's dispatch at the start of the chain
        ([{"type": "owning_party", "destination": "urn:epc:id:pgln:5401234.00000"}], "ORIGIN_SORTED"),
        ([{"type": "possessing_party", "destination": "urn:epc:id:pgln:5412345.00000"}], "LASTMILE_HANDOVER"),
        ([{"type": "urn:epcglobal:cbv:sdt:location", "destination": "urn:epc:id:sgln:5412345.00001.0"}],
         "LASTMILE_HANDOVER"),
    ],
)  # fmt: skip
def test_shipping_is_decided_by_its_destination(destinations: list[dict[str, str]] | None, code: str) -> None:
    (record,) = parse(json.dumps(event(bizStep="shipping", destinationList=destinations)).encode(), "x.json").records
    assert record.value["code"] == code
