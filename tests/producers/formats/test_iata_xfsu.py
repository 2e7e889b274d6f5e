"""Cargo-XML XFSU parser on status messages laid out after the Cargo-XML 3 StatusMessage schema
(MasterConsignment → ReportedStatus → AssociatedStatusConsignment → SpecifiedLogisticsTransportMovement),
one fixture per status code family; each gives the scans of the equivalent Cargo-IMP FSU text."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from producers.formats import FormatError, iata_fsu, iata_xfsu, parser_for
from producers.formats.iata_xfsu import MAX_DEPTH, MAX_DOCUMENT_BYTES, parse

REFERENCE_MS = int(datetime(2024, 11, 30, tzinfo=ZoneInfo("UTC")).timestamp() * 1000)
#: What differs by design between an FSU scan and the XFSU scan of the same status.
FORMAT_SPECIFIC = ("event_id", "raw_format", "recorded_time_ms")

LH_AWB = "FSU/14\n020-12345675FRAJFK/T10K250.5\n"
QR_AWB = "FSU/14\n157-12345675HGHLGG/T1K10\n"
EQUIVALENT_FSU = {
    "bkd_rcs_acceptance.xml": LH_AWB + "BKD/LH400/16OCT1240/FRAJFK/T10K250.5\nRCS/15OCT0930/FRA/T10K250.5\n",
    "dep_part_shipment.xml": LH_AWB + "DEP/LH400/16OCT/FRAJFK/P5K125T10/A1430\n",
    "arr_part_shipment.xml": LH_AWB + "ARR/LH400/16OCT/JFK/P5K125T10/A1715\n",
    "dis_missing_pieces.xml": LH_AWB + "DIS/LH400/16OCT1900/JFK/MSCA/P5K125T10\n",
    "nfd_notified.xml": QR_AWB + "NFD/LGG/20OCT1130/T1K10/CAINIAO EWTP HUB\n",
    "ccd_customs_cleared.xml": QR_AWB + "CCD/21OCT0800/LGG/T1K10\n",
    "dlv_delivered.xml": QR_AWB + "DLV/21OCT0930/LGG/T1K10/CAINIAO EWTP HUB\n",
}


def fixture(fixture_bytes: Callable[[str], bytes], name: str) -> bytes:
    return fixture_bytes(f"iata_xfsu/{name}")


def ms(year: int, month: int, day: int, hour: int, minute: int, zone: str) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone)).timestamp() * 1000)


def comparable(scan: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in scan.items() if name not in FORMAT_SPECIFIC}


def xfsu(statuses: str, awb: str = "020-12345675") -> bytes:
    """A minimal XFSU around ``statuses`` (ReportedStatus elements), FRA → JFK, 10 pieces."""
    awb_element = f"<ram:TransportContractDocument><ram:ID>{awb}</ram:ID></ram:TransportContractDocument>"
    return (
        '<rsm:StatusMessage xmlns:rsm="iata:statusmessage:1" xmlns:ram="iata:datamodel:3"><rsm:MasterConsignment>'
        f"<ram:TotalPieceQuantity>10</ram:TotalPieceQuantity>{awb_element if awb else ''}"
        "<ram:OriginLocation><ram:ID>FRA</ram:ID></ram:OriginLocation>"
        "<ram:FinalDestinationLocation><ram:ID>JFK</ram:ID></ram:FinalDestinationLocation>"
        f"{statuses}</rsm:MasterConsignment></rsm:StatusMessage>"
    ).encode()


def movement(airport: str | None = "FRA", moment: str | None = "2024-10-15T09:30:00", flight: str = "") -> str:
    """A SpecifiedLogisticsTransportMovement's content: flight, airport, status time."""
    parts = [f"<ram:ID>{flight}</ram:ID>" if flight else ""]
    if airport:
        parts.append(f"<ram:SpecifiedLocation><ram:ID>{airport}</ram:ID></ram:SpecifiedLocation>")
    if moment:
        parts.append(
            f"<ram:SpecifiedEvent><ram:OccurrenceDateTime>{moment}</ram:OccurrenceDateTime></ram:SpecifiedEvent>"
        )
    return "".join(parts)


def status(code: str, content: str | None = None) -> str:
    """A ReportedStatus with one AssociatedStatusConsignment of 10 pieces."""
    return (
        f"<ram:ReportedStatus><ram:ReasonCode>{code}</ram:ReasonCode><ram:AssociatedStatusConsignment>"
        "<ram:PieceQuantity>10</ram:PieceQuantity><ram:SpecifiedLogisticsTransportMovement>"
        f"{movement() if content is None else content}</ram:SpecifiedLogisticsTransportMovement>"
        "</ram:AssociatedStatusConsignment></ram:ReportedStatus>"
    )


@pytest.mark.parametrize("name", sorted(EQUIVALENT_FSU))
def test_each_status_family_gives_the_scans_of_the_equivalent_fsu(
    fixture_bytes: Callable[[str], bytes], name: str
) -> None:
    result = parse(fixture(fixture_bytes, name), name)
    expected = iata_fsu.parse(EQUIVALENT_FSU[name].encode(), "same.fsu", reference_time_ms=REFERENCE_MS)
    assert result.issues == [] and expected.issues == []
    assert [comparable(r.value) for r in result.records] == [comparable(r.value) for r in expected.records]
    assert {r.value["raw_format"] for r in result.records} == {"iata-xfsu"}


def test_departure_of_a_part_shipment(fixture_bytes: Callable[[str], bytes]) -> None:
    (record,) = parse(fixture(fixture_bytes, "dep_part_shipment.xml"), "lh.xml").records
    scan = record.value
    assert record.reference == "lh.xml status 1"
    assert (scan["code"], scan["raw_code"], scan["source"], scan["carrier"]) == (
        "LINEHAUL_DEPARTED",
        "DEP",
        "flight",
        "020",
    )
    assert scan["handling_unit"] == scan["references"]["awb"] == "020-12345675"
    assert scan["tracking_number"] is None
    assert scan["references"]["flight_number"] == "LH400"
    assert scan["location"] == {
        "code": "FRA",
        "kind": "airport",
        "country": "DE",
        "name": "Frankfurt am Main International Airport",
    }
    assert scan["event_time_ms"] == ms(2024, 10, 16, 14, 30, "Europe/Berlin")
    assert scan["utc_offset_minutes"] == 120
    assert scan["reason"] == "part shipment: 5 of 10 pieces, 125 K"


def test_default_namespace_and_undashed_awb_as_a_jaxb_marshaller_writes_them(
    fixture_bytes: Callable[[str], bytes],
) -> None:
    (record,) = parse(fixture(fixture_bytes, "arr_part_shipment.xml"), "arr.xml").records
    assert record.value["handling_unit"] == "020-12345675"
    assert record.value["location"]["code"] == "JFK"  # the arrival airport of an ARR
    assert record.value["event_time_ms"] == ms(2024, 10, 16, 17, 15, "America/New_York")
    assert record.value["utc_offset_minutes"] == -240


def test_a_time_with_its_offset_is_taken_as_given() -> None:
    (record,) = parse(xfsu(status("RCS", movement(moment="2024-10-15T09:30:00+05:30"))), "x.xml").records
    assert record.value["utc_offset_minutes"] == 330
    assert record.value["event_time_ms"] == ms(2024, 10, 15, 4, 0, "UTC")


def test_of_an_airport_pair_the_status_side_decides_like_fsu() -> None:
    pair = (
        movement(airport=None, moment=None, flight="LH400")
        + movement(airport="FRA", moment=None)
        + movement(airport="JFK", moment="2024-10-16T17:15:00")
    )
    departed, arrived = (record.value for record in parse(xfsu(status("DEP", pair) + status("ARR", pair)), "x").records)
    assert departed["location"]["code"] == "FRA"  # departure-side status: the first of the pair
    assert arrived["location"]["code"] == "JFK"  # arrival-side status: the second
    assert departed["references"]["flight_number"] == arrived["references"]["flight_number"] == "LH400"


def test_without_a_location_the_awb_route_decides_like_fsu() -> None:
    moment = (
        "<ram:SpecifiedEvent><ram:OccurrenceDateTime>2024-10-16T18:00:00</ram:OccurrenceDateTime></ram:SpecifiedEvent>"
    )
    data = xfsu(status("MAN", moment) + status("RCF", moment))
    manifested, unloaded = (record.value for record in parse(data, "x.xml").records)
    assert manifested["location"]["code"] == "FRA"  # a departure-side status: the origin
    assert unloaded["location"]["code"] == "JFK"  # an arrival-side status: the destination
    assert unloaded["event_time_ms"] == ms(2024, 10, 16, 18, 0, "America/New_York")


def test_event_ids_are_deterministic_and_distinct(fixture_bytes: Callable[[str], bytes]) -> None:
    ids = []
    for name in sorted(EQUIVALENT_FSU):
        first = [r.value["event_id"] for r in parse(fixture(fixture_bytes, name), "a.xml").records]
        again = [r.value["event_id"] for r in parse(fixture(fixture_bytes, name), "resent.xml").records]
        assert first == again
        ids.extend(first)
    assert len(set(ids)) == len(ids)


def test_carrier_flag_wins_over_the_awb_prefix(fixture_bytes: Callable[[str], bytes]) -> None:
    result = parser_for("xfsu")(fixture(fixture_bytes, "nfd_notified.xml"), "x.xml", carrier="QR")
    assert [record.value["carrier"] for record in result.records] == ["QR"]


def test_bad_check_digit_is_an_issue_of_the_message(fixture_bytes: Callable[[str], bytes]) -> None:
    data = fixture(fixture_bytes, "bad_check_digit.xml")
    result = parse(data, "bad.xml")
    assert result.records == []
    (issue,) = result.issues
    assert (issue.reference, issue.field, issue.reason_code) == (
        "bad.xml (XFSU message)",
        "TransportContractDocument.ID",
        "malformed_record",
    )
    assert issue.message == "AWB 020-12345676 fails its mod-7 check digit (expected 5)"
    assert issue.raw == data


def test_unknown_status_is_reported_and_the_other_statuses_read(fixture_bytes: Callable[[str], bytes]) -> None:
    result = parse(fixture(fixture_bytes, "unknown_status.xml"), "u.xml")
    (issue,) = result.issues
    assert (issue.reference, issue.field, issue.reason_code) == (
        "u.xml status 1",
        "ReportedStatus[0].ReasonCode",
        "unknown_code",
    )
    assert "'ZZZ'" in issue.message
    assert b"ZZZ" in issue.raw and b"RCS" not in issue.raw  # the dead letter holds that status only
    assert issue.raw.endswith(b"ReportedStatus>")
    assert [(r.reference, r.value["raw_code"]) for r in result.records] == [("u.xml status 2", "RCS")]


def test_xml_bomb_is_refused_before_any_expansion(fixture_bytes: Callable[[str], bytes]) -> None:
    with pytest.raises(FormatError, match=r"bomb\.xml: XML with a document type declaration \(DTD\) is refused"):
        parse(fixture(fixture_bytes, "billion_laughs.xml"), "bomb.xml")


def test_external_entity_is_refused() -> None:
    doctype = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY secret SYSTEM "file:///etc/passwd">]>'
    data = doctype + xfsu(status("&secret;"))
    with pytest.raises(FormatError, match="DTD"):
        parse(data, "xxe.xml")


def test_wrong_root_names_what_it_found(fixture_bytes: Callable[[str], bytes]) -> None:
    with pytest.raises(
        FormatError, match=r"root element is \{iata:waybill:1\}Waybill; an XFSU's root is StatusMessage"
    ):
        parse(fixture(fixture_bytes, "wrong_root.xml"), "xfwb.xml")
    with pytest.raises(FormatError, match=r"root element is StatusMessage; .* namespace iata:statusmessage:1"):
        parse(b"<StatusMessage><MasterConsignment/></StatusMessage>", "no-namespace.xml")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not well-formed XML: no element found"),
        (b"DEP/LH400/16OCT/FRAJFK", "not well-formed XML: not well-formed (invalid token)"),
        (
            b'<rsm:StatusMessage xmlns:rsm="iata:statusmessage:1"><a></rsm:StatusMessage>',
            "not well-formed XML: mismatched tag",
        ),
        (b"<r>&undefined;</r>", "not well-formed XML: undefined entity"),
        (b"<a>" * (MAX_DEPTH + 1) + b"</a>" * (MAX_DEPTH + 1), f"nested deeper than {MAX_DEPTH} elements"),
        (b" " * (MAX_DOCUMENT_BYTES + 1), f"over the {MAX_DOCUMENT_BYTES} bytes an XFSU document may have"),
    ],
    ids=["empty", "fsu-text", "mismatched-tag", "undefined-entity", "too-deep", "too-large"],
)
def test_unreadable_documents_raise_format_error(data: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=f"^doc\\.xml: .*{re.escape(message)}"):
        parse(data, "doc.xml")


def test_statuses_that_cannot_become_scans_name_their_field() -> None:
    data = xfsu(
        "<ram:ReportedStatus><ram:AssociatedStatusConsignment/></ram:ReportedStatus>"
        "<ram:ReportedStatus><ram:ReasonCode>ARR</ram:ReasonCode></ram:ReportedStatus>"
        + status("DEP", movement(moment=None, flight="LH400"))
        + status("RCS", movement(moment="16OCT1430"))
        + status("ARR", movement(airport="XXX"))
        + status("RCS")
    )
    result = parse(data, "x.xml")
    consignment = "AssociatedStatusConsignment[0].SpecifiedLogisticsTransportMovement"
    assert [(i.reference, i.field, i.reason_code) for i in result.issues] == [
        ("x.xml status 1", "ReportedStatus[0].ReasonCode", "malformed_record"),
        ("x.xml status 2", "ReportedStatus[1].AssociatedStatusConsignment", "malformed_record"),
        ("x.xml status 3", f"ReportedStatus[2].{consignment}.SpecifiedEvent.OccurrenceDateTime", "malformed_record"),
        ("x.xml status 4", f"ReportedStatus[3].{consignment}.SpecifiedEvent.OccurrenceDateTime", "malformed_record"),
        ("x.xml status 5", f"ReportedStatus[4].{consignment}.SpecifiedLocation.ID", "unknown_location"),
    ]
    assert "has no time" in result.issues[2].message
    assert "'16OCT1430' is not an xs:dateTime" in result.issues[3].message
    assert "airport XXX is not a known IATA airport" in result.issues[4].message
    assert [r.reference for r in result.records] == ["x.xml status 6"]


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (b'<rsm:StatusMessage xmlns:rsm="iata:statusmessage:1"/>', "MasterConsignment", "no MasterConsignment"),
        (xfsu(status("RCS"), awb=""), "TransportContractDocument.ID", "no TransportContractDocument/ID"),
        (xfsu(status("RCS"), awb="020-1234567"), "TransportContractDocument.ID", "is not a 3-digit prefix"),
        (xfsu(""), "ReportedStatus", "has no ReportedStatus"),
    ],
    ids=["no-consignment", "no-awb", "short-awb", "no-status"],
)
def test_message_level_issues(data: bytes, field: str, message: str) -> None:
    result = parse(data, "m.xml")
    assert result.records == []
    (issue,) = result.issues
    assert (issue.reference, issue.field) == ("m.xml (XFSU message)", field)
    assert message in issue.message


def test_registered_as_a_format() -> None:
    assert parser_for("xfsu") is iata_xfsu.parse


def test_airports_beyond_the_former_table(fixture_bytes: Callable[[str], bytes]) -> None:
    # issue 19: the same airport data set as FSU (airportsdata), e.g. Birmingham.
    document = fixture(fixture_bytes, "dlv_delivered.xml").replace(b"<ram:ID>LGG</ram:ID>", b"<ram:ID>BHX</ram:ID>")
    (record,) = parse(document, "x.xml").records
    assert record.value["location"]["code"] == "BHX"
    assert record.value["event_time_ms"] == ms(2024, 10, 21, 9, 30, "Europe/London")
