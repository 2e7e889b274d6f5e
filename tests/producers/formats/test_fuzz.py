"""Fuzzing: on arbitrary bytes, text, JSON and near-valid documents (XML for XFSU), every standard-format parser
returns records (valid against the Avro schemas) and issues, or raises FormatError for a whole
unreadable document; never any other exception."""

from __future__ import annotations

import json
from typing import Any
from xml.sax.saxutils import escape

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producers.formats import FormatError, ParseResult, parser_for
from schemas.codec import default_codec

STANDARD_FORMATS = ("fsu", "xfsu", "onerecord", "emsevt", "epcis", "carrier-csv")
RECORD_NAMES = {"scan": "ScanEvent", "manifest": "Manifest"}
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
plausible_strings = st.sampled_from([
    "DEP", "ARR", "EMH", "EME", "EMI", "sorting", "urn:epcglobal:cbv:bizstep:receiving", "ADD", "DELETE", "OBSERVE",
    "ObjectEvent", "AggregationEvent", "cargo:LogisticsEvent", "LogisticsEvent", "2024-10-20T10:05:00+02:00",
    "2024-10-20T10:05:00", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "+02:00", "-25:00", "Z",
    "urn:epc:id:sscc:0614141.1234567890", "urn:epc:id:sscc:1.2", "https://id.gs1.org/00/106141412345678908",
    "CSQU3054383", "RR123456785CN", "157-12345675", "157-12345670", "LGG", "BELGGA", "", " ",
    # issue 19 constructs: Digital Links, other EPCs, bizStep forms, ONE Record subtypes and literals
    "https://dl.example/01/05412345678908/21/AB-1%2F2", "https://id.gs1.org/00/106141412345678909",
    "https://x.example/8003/05401234000777RT", "urn:epc:id:grai:0614141.12345.400", "urn:epc:id:sgtin:1.2.-",
    "gs1:BizStep-shipping", "cbv:BizStep-", "https://ref.gs1.org/cbv/BizStep-retail_selling", "shipping",
    "possessing_party", "owning_party", "cargo:StatusUpdateEvent", "api:Collection", "Collection",
    "https://or.example/logistics-objects/HEL", "https://or.example/lo/awb-157-12345675/logistics-events/1",
])  # fmt: skip
mixed_values = plausible_strings | json_values


def keyed_objects(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(keys), mixed_values | st.lists(mixed_values, max_size=3), max_size=len(keys))


epcis_events = keyed_objects(
    ["type", "action", "bizStep", "epcList", "parentID", "childEPCs", "eventTime", "eventTimeZoneOffset",
     "recordTime", "eventID", "readPoint", "bizLocation", "errorDeclaration", "destinationList"]
)  # fmt: skip
onerecord_events = keyed_objects(
    ["@type", "@id", "cargo:eventCode", "eventCode", "cargo:eventDate", "creationDate", "cargo:eventFor",
     "linkedObject", "eventLocation", "recordedAtLocation", "eventTimeType", "partialEventIndicator", "hasItem",
     "waybill", "locationCode"]
)  # fmt: skip
emsevt_items = keyed_objects(
    ["mail_item_id", "event_code", "event_time", "office_code", "reason_code", "action_code", "carrier", "reason"]
)
fsu_tokens = st.sampled_from([
    "FSU/14", "020-12345675FRAJFK", "020-12345676FRAJFK", "DEP", "ARR", "RCS", "DIS", "LH400", "16OCT", "31FEB",
    "16OCT2599", "A1430", "FRAJFK", "LGG", "XXX", "T10K250.5", "P5K125T10", "P0", "MSCA", "", "QK X", ".Y",
    # issue 19: Type B framing, origin lines, information lines, split carrier/flight, one-line messages
    "\x01QK LGGFMCV", "\x02FSU/14", "\x03", ".HDQFMCK 301245", ".HDQFMCK 991299", "OCI", "ULD", "TRM", "BKD",
    "29FEB", "QR", "0843", "HEL", "FSU/14 020-12345675FRAJFK/T1K100 BKD", "ZCZC", "NNNN", "=TEXT",
])  # fmt: skip
fsu_documents = st.lists(st.lists(fsu_tokens, min_size=1, max_size=6).map("/".join), max_size=12).map("\n".join)
# XFSU leaf texts: plausible values, else any text of characters XML allows.
xfsu_texts = st.sampled_from([
    "DEP", "ARR", "RCS", "DIS", "ZZZ", "020-12345675", "02012345675", "020-12345676", "FRA", "JFK", "LGG", "XXX",
    "LH400", "2024-10-16T14:30:00", "2024-10-16T14:30:00+02:00", "2024-10-16", "2024-02-30T00:00:00",
    "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00", "16OCT1430", "5", "10", "-1", "P", "T", "MSCA", "", " ",
]) | st.text(st.characters(exclude_categories=("Cc", "Cs")), max_size=12)  # fmt: skip
CONSIGNMENT = "AssociatedStatusConsignment"
MOVEMENT = (CONSIGNMENT, "SpecifiedLogisticsTransportMovement")
xfsu_airports = st.sampled_from(["FRA", "JFK", "LGG", "XXX", "frankfurt"]) | xfsu_texts
xfsu_times = st.sampled_from(["2024-10-16T14:30:00", "2024-10-16T14:30:00Z", "2024-10-16", "2024-02-30T00:00:00"])
XFSU_STATUS_LEAVES = {
    (CONSIGNMENT, "PieceQuantity"): st.sampled_from(["5", "0", "-1"]) | xfsu_texts,
    (CONSIGNMENT, "TransportSplitDescription"): st.sampled_from(["P", "T"]) | xfsu_texts,
    (CONSIGNMENT, "DiscrepancyDescriptionCode"): xfsu_texts,
    (CONSIGNMENT, "GrossWeightMeasure"): xfsu_texts,
    (*MOVEMENT, "ID"): xfsu_texts,
    (*MOVEMENT, "SpecifiedLocation", "ID"): xfsu_airports,
    (*MOVEMENT, "SpecifiedEvent", "OccurrenceDateTime"): xfsu_times | xfsu_texts,
    (*MOVEMENT, "DepartureEvent", "DepartureOccurrenceDateTime"): xfsu_times | xfsu_texts,
    (*MOVEMENT, "ArrivalEvent", "ArrivalOccurrenceDateTime"): xfsu_times | xfsu_texts,
}
XFSU_CONSIGNMENT_LEAVES = {
    ("OriginLocation", "ID"): xfsu_airports,
    ("FinalDestinationLocation", "ID"): xfsu_airports,
    ("TotalPieceQuantity",): xfsu_texts,
}


def nested_xml(leaves: dict[tuple[str, ...], str]) -> str:
    """Cargo-XML data-model elements from leaf paths and their texts, shared path prefixes merged."""
    groups: dict[str, dict[tuple[str, ...], str]] = {}
    parts = []
    for (first, *rest), text in leaves.items():
        if rest:
            groups.setdefault(first, {})[tuple(rest)] = text
        else:
            parts.append(f"<ram:{first}>{escape(text)}</ram:{first}>")
    parts += [f"<ram:{name}>{nested_xml(children)}</ram:{name}>" for name, children in groups.items()]
    return "".join(parts)


xfsu_statuses = st.fixed_dictionaries(
    {("ReasonCode",): st.sampled_from(["DEP", "ARR", "RCS", "DIS", "NFD", "ZZZ", ""])},
    optional=XFSU_STATUS_LEAVES,
).map(lambda leaves: f"<ram:ReportedStatus>{nested_xml(leaves)}</ram:ReportedStatus>")
xfsu_consignments = st.fixed_dictionaries(
    {
        ("TransportContractDocument", "ID"): st.sampled_from(
            ["020-12345675", "15712345675", "157-12345675", "020-12345676"]
        )
    },
    optional=XFSU_CONSIGNMENT_LEAVES,
).map(nested_xml)
xfsu_documents = st.tuples(xfsu_consignments, st.lists(xfsu_statuses, max_size=3)).map(
    lambda parts: (
        '<rsm:StatusMessage xmlns:rsm="iata:statusmessage:1" xmlns:ram="iata:datamodel:3"><rsm:MasterConsignment>'
        f"{parts[0]}{''.join(parts[1])}</rsm:MasterConsignment></rsm:StatusMessage>"
    )
)
csv_cells = plausible_strings | st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
csv_documents = st.lists(st.lists(csv_cells, max_size=8).map(",".join), max_size=8).map(
    lambda rows: "\n".join(
        [
            "mail_item_id,event_code,event_time,office_code,reason_code,action_code,"
            "tracking_number,status,carrier,location",
            *rows,
        ]
    )
)


def check(format_name: str, data: bytes) -> None:
    try:
        result = parser_for(format_name)(data, "fuzz")
    except FormatError as error:
        assert str(error)
        return
    assert isinstance(result, ParseResult)
    for record in result.records:
        assert default_codec().validate(RECORD_NAMES[record.kind], record.value) == []
    for issue in result.issues:
        assert issue.reference and issue.message and isinstance(issue.raw, bytes)


@FUZZ
@given(format_name=st.sampled_from(STANDARD_FORMATS), data=st.binary(max_size=300))
def test_arbitrary_bytes(format_name: str, data: bytes) -> None:
    check(format_name, data)


@FUZZ
@given(format_name=st.sampled_from(STANDARD_FORMATS), text=st.text(max_size=300))
def test_arbitrary_text(format_name: str, text: str) -> None:
    check(format_name, text.encode())


@FUZZ
@given(format_name=st.sampled_from(STANDARD_FORMATS), value=json_values)
def test_arbitrary_json(format_name: str, value: Any) -> None:
    check(format_name, json.dumps(value).encode())


@FUZZ
@given(events=st.lists(epcis_events, max_size=4), wrapped=st.booleans())
def test_near_valid_epcis(events: list[dict[str, Any]], wrapped: bool) -> None:
    document = {"type": "EPCISDocument", "epcisBody": {"eventList": events}} if wrapped else events
    check("epcis", json.dumps(document).encode())


@FUZZ
@given(events=st.lists(onerecord_events, max_size=4), as_graph=st.booleans())
def test_near_valid_onerecord(events: list[dict[str, Any]], as_graph: bool) -> None:
    check("onerecord", json.dumps({"@graph": events} if as_graph else events).encode())


@FUZZ
@given(items=st.lists(emsevt_items, max_size=4))
def test_near_valid_emsevt_json(items: list[dict[str, Any]]) -> None:
    check("emsevt", json.dumps(items).encode())


@FUZZ
@given(document=fsu_documents)
def test_near_valid_fsu(document: str) -> None:
    check("fsu", document.encode())


@FUZZ
@given(document=xfsu_documents)
def test_near_valid_xfsu(document: str) -> None:
    check("xfsu", document.encode())


@FUZZ
@given(format_name=st.sampled_from(["emsevt", "carrier-csv"]), document=csv_documents)
def test_near_valid_csv(format_name: str, document: str) -> None:
    check(format_name, document.encode())
