"""Conformance: our fixtures written after the standards' public examples (fixtures/conformance/,
its README names the example each follows) give the right scans, or are refused as a whole for a
documented reason. One row per fixture: the (raw code, code, unit or parcel) of each record, and
the (field, reason code) of each issue."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from producers.formats import FormatError, ParseResult
from producers.formats.gs1_epcis import parse as parse_epcis
from producers.formats.iata_fsu import parse as parse_fsu
from producers.formats.iata_onerecord import parse as parse_onerecord

FIXTURES = Path(__file__).parent / "fixtures" / "conformance"
READ_AT_MS = int(datetime(2026, 11, 30, 12, 0, tzinfo=UTC).timestamp() * 1000)

Row = tuple[str, str, str]  # (raw code, code, handling unit or tracking number); manifests: ("manifest", action, unit)


def outcome(result: ParseResult) -> tuple[list[Row], list[tuple[str, str]]]:
    rows = []
    for record in result.records:
        value = record.value
        if record.kind == "manifest":
            rows.append(("manifest", value["action"], value["handling_unit"]))
        else:
            rows.append((value["raw_code"], value["code"], value["handling_unit"] or value["tracking_number"]))
    return rows, [(issue.field, issue.reason_code) for issue in result.issues]


FSU: dict[str, list[Row] | str] = {
    "fsu01_type_b_envelope_oci_uld.fsu": [("FIW", "CARRIER_INFORMATION", "157-33806275")],
    "fsu02_soh_stx_etx_frames.fsu": [
        ("DEP", "LINEHAUL_DEPARTED", "160-88001233"),
        ("ARR", "LINEHAUL_ARRIVED", "160-88001233"),
    ],
    "fsu03_bkd_carrier_and_flight_apart.fsu": [("BKD", "LINEHAUL_BOOKED", "176-40718204")],
    "fsu04_awb_line_without_airports.fsu": [("RCS", "LINEHAUL_RECEIVED", "020-61123451")],
    "fsu05_customs_codes.fsu": [
        ("CRC", "IMPORT_CUSTOMS_PRESENTED", "235-55123401"),
        ("TGC", "IMPORT_CUSTOMS_PRESENTED", "235-55123401"),
        ("CCD", "IMPORT_CUSTOMS_CLEARED", "235-55123401"),
    ],
    "fsu06_documents_and_deliveries.fsu": [
        ("AWR", "CARRIER_INFORMATION", "618-22000311"),
        ("NFD", "LINEHAUL_UNLOADED", "618-22000311"),
        ("AWD", "CARRIER_INFORMATION", "618-22000311"),
        ("DLV", "CARRIER_INFORMATION", "618-22000311"),
        ("DDL", "CARRIER_INFORMATION", "618-22000311"),
    ],
    "fsu07_transfer_between_airlines.fsu": [
        ("RCF", "LINEHAUL_UNLOADED", "172-33445565"),
        ("TRM", "TRANSIT_ARRIVED", "172-33445565"),
        ("TFD", "TRANSIT_DEPARTED", "172-33445565"),
        ("RCT", "TRANSIT_ARRIVED", "172-33445565"),
    ],
    "fsu08_acceptance_to_departure.fsu": [
        ("FOH", "LINEHAUL_RECEIVED", "501-76543213"),
        ("RCS", "LINEHAUL_RECEIVED", "501-76543213"),
        ("PRE", "LINEHAUL_MANIFESTED", "501-76543213"),
        ("MAN", "LINEHAUL_MANIFESTED", "501-76543213"),
        ("DEP", "LINEHAUL_DEPARTED", "501-76543213"),
    ],
    "fsu09_one_line_rendering.fsu": [
        ("BKD", "LINEHAUL_BOOKED", "180-55667780"),
        ("FOH", "LINEHAUL_RECEIVED", "180-55667780"),
        ("RCS", "LINEHAUL_RECEIVED", "180-55667780"),
    ],
    "fsu10_year_from_read_and_envelope_time.fsu": [
        ("DLV", "CARRIER_INFORMATION", "297-90817263"),
        ("ARR", "LINEHAUL_ARRIVED", "297-90817263"),
    ],
    "fsu11_discrepancy_part_shipment.fsu": [
        ("RCF", "LINEHAUL_UNLOADED", "784-10293846"),
        ("DIS", "LINEHAUL_DISCREPANCY", "784-10293846"),
        ("DIS", "LINEHAUL_DISCREPANCY", "784-10293846"),
    ],
    "fsu12_two_messages_osi.fsu": [
        ("DEP", "LINEHAUL_DEPARTED", "999-10000060"),
        ("ARR", "LINEHAUL_ARRIVED", "999-10000060"),
    ],
    "fsu13_fsa_not_an_fsu.fsu": "no FSU/nn header line",
}

ONE_RECORD: dict[str, tuple[list[Row], list[tuple[str, str]]]] = {
    "or01_event_prefixed_typed_values.json": (
        [("DEP", "LINEHAUL_DEPARTED", "7C0E55D2-31AA-4B8E-9F10-2D6C1F0B9A11")],
        [],
    ),
    "or02_collection_one_item.json": ([("ARR", "LINEHAUL_ARRIVED", "7C0E55D2-31AA-4B8E-9F10-2D6C1F0B9A11")], []),
    "or03_collection_list.json": (
        [("DEP", "LINEHAUL_DEPARTED", "618-22000311"), ("RCF", "LINEHAUL_UNLOADED", "618-22000311")],
        [],
    ),
    "or04_vocab_no_event_for_recorded_at.json": ([("FOH", "LINEHAUL_RECEIVED", "SHP-4471")], []),
    "or05_partial_typed_boolean.json": ([("DEP", "LINEHAUL_DEPARTED", "SHP-4471")], []),
    "or06_event_for_several_pieces.json": (
        [("RCS", "LINEHAUL_RECEIVED", "PIECE-1"), ("RCS", "LINEHAUL_RECEIVED", "PIECE-2")],
        [],
    ),
    "or07_status_update_event.json": ([("CCD", "IMPORT_CUSTOMS_CLEARED", "172-33445565")], []),
    "or08_graph_shipment_waybill_location.json": ([("BKD", "LINEHAUL_BOOKED", "020-61123451")], []),
    "or09_expanded_iris.json": ([("RCF", "LINEHAUL_UNLOADED", "AKE55310QR")], []),
    "or10_planned_event.json": ([], [("[0].eventTimeType", "unsupported_record")]),
    "or11_multi_status_response.json": ([], [("[0].@type", "unsupported_record")]),
    "or12_empty_collection.json": ([], []),
    "or13_linked_object_api2.json": ([("DLV", "CARRIER_INFORMATION", "235-55123401")], []),
}

SSCC_1, SSCC_4, SSCC_5 = "054012340000000012", "054012340000000043", "054012340000000050"
EPCIS: dict[str, tuple[list[Row], list[tuple[str, str]]]] = {
    "ep01_object_event_urn_shipping.jsonld": (
        [
            ("shipping", "ORIGIN_SORTED", "SGTIN069012345678921001"),
            ("shipping", "ORIGIN_SORTED", "SGTIN069012345678921002"),
        ],
        [],
    ),
    "ep02_object_event_receiving_extension.jsonld": ([("receiving", "HUB_RECEIVED", SSCC_1)], []),
    "ep03_aggregation_observe_digital_links.jsonld": ([("sorting", "HUB_SORTED", "054012340000000029")], []),
    "ep04_digital_link_sscc_other_resolver.jsonld": (
        [("loading", "HUB_SORTED", "540123450000000011"), ("loading", "HUB_SORTED", "540123450000000028")],
        [],
    ),
    "ep05_serials_gs1_characters.jsonld": (
        [
            ("arriving", "HUB_RECEIVED", "SGTIN05412345678908AB127"),
            ("arriving", "HUB_RECEIVED", "SGTIN05412345678908AB13X"),
        ],
        [],
    ),
    "ep06_one_epc_not_a_parcel.jsonld": (
        [("departing", "HUB_DEPARTED", SSCC_1), ("departing", "HUB_DEPARTED", "540123450000000028")],
        [("epcisBody.eventList[0].epcList[1]", "unsupported_record")],
    ),
    "ep07_bizstep_forms.jsonld": (
        [
            ("receiving", "HUB_RECEIVED", SSCC_4),
            ("sorting", "HUB_SORTED", SSCC_4),
            ("staging_outbound", "HUB_SORTED", SSCC_4),
            ("departing", "HUB_DEPARTED", SSCC_4),
        ],
        [],
    ),
    "ep08_shipping_by_destination.jsonld": (
        [
            ("shipping", "LASTMILE_HANDOVER", "LP00123456789CN"),
            ("shipping", "ORIGIN_SORTED", "LP00123456790CN"),
        ],
        [],
    ),
    "ep09_query_document.jsonld": ([("unloading", "LINEHAUL_UNLOADED", SSCC_5)], []),
    "ep10_aggregation_add_packing.jsonld": ([("manifest", "add", "069012340000000030")], []),
    "ep11_transformation_event.jsonld": ([], [("epcisBody.eventList[0].type", "unsupported_record")]),
    "ep12_association_event.jsonld": ([], [("epcisBody.eventList[0].type", "unsupported_record")]),
    "ep13_error_declaration.jsonld": ([], [("epcisBody.eventList[0].errorDeclaration", "unsupported_record")]),
    "ep14_sensor_report_inspecting.jsonld": ([("inspecting", "HUB_RECEIVED", "540123450000000042")], []),
    "ep15_unknown_and_non_parcel_steps.jsonld": (
        [],
        [
            ("epcisBody.eventList[0].bizStep", "unsupported_record"),
            ("epcisBody.eventList[1].bizStep", "unknown_code"),
        ],
    ),
}


def test_every_fixture_has_an_expectation_and_each_standard_has_ten() -> None:
    for folder, table in (("fsu", FSU), ("onerecord", ONE_RECORD), ("epcis", EPCIS)):
        assert sorted(path.name for path in (FIXTURES / folder).iterdir()) == sorted(table), folder
        assert len(table) >= 10


@pytest.mark.parametrize("name", sorted(FSU))
def test_fsu_fixture(name: str) -> None:
    data = (FIXTURES / "fsu" / name).read_bytes()
    expected = FSU[name]
    if isinstance(expected, str):
        with pytest.raises(FormatError, match=expected):
            parse_fsu(data, name, reference_time_ms=READ_AT_MS)
        return
    assert outcome(parse_fsu(data, name, reference_time_ms=READ_AT_MS)) == (expected, [])


@pytest.mark.parametrize("name", sorted(ONE_RECORD))
def test_onerecord_fixture(name: str) -> None:
    assert outcome(parse_onerecord((FIXTURES / "onerecord" / name).read_bytes(), name)) == ONE_RECORD[name]


@pytest.mark.parametrize("name", sorted(EPCIS))
def test_epcis_fixture(name: str) -> None:
    assert outcome(parse_epcis((FIXTURES / "epcis" / name).read_bytes(), name)) == EPCIS[name]
