"""The movement board against real Redis: movements from unit manifests and scans (either first),
expected parcels from manifests, parcel counts that follow the parcels' states, idempotent replays,
deletions, paging and filters; and the projector building it from Kafka."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from consumers.movements import (
    PARCEL_COUNTERS,
    MovementPage,
    MovementWriter,
    board_flags,
    customer_movement,
    movement_of,
    read_movements,
    unit_scan_of,
)
from consumers.projector import Projector
from consumers.read_model import project
from consumers.settings import ConsumerSettings
from schemas.codec import default_codec
from schemas.topics import TopicNames
from tests.consumers.helpers import BASE_TIME_MS, StateProducer, parcel_state
from tests.stages import publish_records, wait_for

HOUR = 3_600_000
REFS = {"awb": "157-12345675", "uld": None, "bag": None, "container": None, "flight_number": "CK261", "train_id": None}
FLIGHT = "flight:CK261/157-12345675"


def unit_manifest(unit: str, bags: list[str], refs: dict[str, Any] = REFS, action: str = "add") -> dict[str, Any]:
    return {
        "manifest_id": f"m-{unit}-{action}-{len(bags)}",
        "handling_unit": unit,
        "unit_type": "uld",
        "action": action,
        "members": bags,
        "member_type": "bag",
        "carrier": "CK",
        "source": "flight",
        "event_time_ms": BASE_TIME_MS,
        "recorded_time_ms": BASE_TIME_MS,
        "references": refs,
    }


def bag_manifest(bag: str, parcels: list[str]) -> dict[str, Any]:
    return {
        **unit_manifest(bag, parcels, {key: None for key in REFS}),
        "manifest_id": f"m-{bag}",
        "unit_type": "bag",
        "member_type": "parcel",
        "source": "warehouse",
    }


def unit_scan(unit: str, code: str, hours: int, place: str, refs: dict[str, Any] = REFS) -> dict[str, Any]:
    return {
        "event_id": f"{unit}-{code}",
        "tracking_number": None,
        "handling_unit": unit,
        "source": "flight",
        "code": code,
        "raw_code": code[:3],
        "raw_format": "iata-fsu",
        "carrier": "CK",
        "event_time_ms": BASE_TIME_MS + hours * HOUR,
        "utc_offset_minutes": 0,
        "recorded_time_ms": BASE_TIME_MS + hours * HOUR,
        "location": {"code": place, "kind": "airport", "country": None, "name": None},
        "references": refs,
        "reason": None,
        "shipment": None,
    }


def fields(status: str, sub_status: str, stage: str) -> dict[str, str]:
    return {"status": status, "sub_status": sub_status, "stage": stage}


PARCELS = [f"LX{n:09d}CN" for n in range(1, 7)]


@pytest.fixture
def writer(redis_url: str, redis_prefix: str) -> Iterator[MovementWriter]:
    client = redis.Redis.from_url(redis_url)
    yield MovementWriter(client, redis_prefix)
    client.close()


def board(redis_url: str, prefix: str, **filters: Any) -> MovementPage:
    async def read() -> MovementPage:
        client = aioredis.Redis.from_url(redis_url)
        try:
            return await read_movements(client, prefix, **filters)
        finally:
            await client.aclose()

    return asyncio.run(read())


def test_movements_are_named_by_their_references() -> None:
    assert movement_of(REFS, "AKE00001CK", "uld") == FLIGHT
    assert movement_of({"train_id": "X8001-001", "container": "TGHU1234567"}, "TGHU1234567", None) == "train:X8001-001"
    assert movement_of({"container": "MSCU1234565"}, "MSCU1234565", None) == "sea:MSCU1234565"
    assert movement_of({}, "MSCU1234565", "container") == "sea:MSCU1234565"
    assert movement_of({"bag": "B1"}, "B1", "bag") is None
    assert (
        unit_scan_of({**unit_scan("AKE1", "LINEHAUL_DEPARTED", 0, "HGH"), "tracking_number": "LX000000001CN"}) is None
    )


def test_customers_are_told_the_flight_train_or_container_never_the_waybill_or_uld() -> None:
    assert customer_movement(FLIGHT) == {"kind": "flight", "reference": "CK261"}
    assert customer_movement(b"flight:CA1047") == {"kind": "flight", "reference": "CA1047"}
    assert customer_movement("train:X8012-042007") == {"kind": "train", "reference": "X8012-042007"}
    assert customer_movement("sea:CSNU3054383") == {"kind": "sea", "reference": "CSNU3054383"}
    # A flight known only by its air waybill or ULD, a container unit that is no container number.
    for internal in ("flight:157-12345675", "flight:AKE00001CK", "sea:CONT-7", "", None, "flight:", "barge:B1"):
        assert customer_movement(internal) is None, internal
    assert movement_of(REFS, "AKE00001CK", "uld") == FLIGHT  # the key the board stores


def test_board_flags_follow_the_parcel_from_arrival_to_delivery() -> None:
    def counted(status: str, sub_status: str, stage: str) -> set[str]:
        flags = board_flags(status, sub_status, stage)
        return {name for i, name in enumerate(PARCEL_COUNTERS) if flags >> i & 1}

    assert counted("InTransit", "departed_origin", "linehaul") == set()
    assert counted("InTransit", "arrived_at_destination", "import_customs") == {"arrived", "in_import_customs"}
    assert counted("CustomsHold", "held_import", "import_customs") == {"arrived", "held"}
    assert counted("InTransit", "import_customs_cleared", "import_customs") == {"arrived", "cleared"}
    assert counted("InTransit", "received_at_hub", "hub") == {"arrived", "cleared"}
    assert counted("InTransit", "sorted_at_hub", "hub") == {"arrived", "cleared", "sorted"}
    assert counted("OutForDelivery", "out_for_delivery", "last_mile") == {
        "arrived",
        "cleared",
        "sorted",
        "handed_to_last_mile",
    }
    assert counted("Delivered", "delivered", "") == set(PARCEL_COUNTERS) - {"in_import_customs", "held", "exceptions"}
    assert counted("Exception", "lost", "") == {"exceptions"}


def test_a_flight_on_the_board_with_expected_and_counted_parcels(
    writer: MovementWriter, redis_url: str, redis_prefix: str
) -> None:
    codec = default_codec()
    records = [
        bag_manifest("BAG1", PARCELS[:3]),  # a bag manifest before its unit's
        unit_manifest("AKE00001CK", ["BAG1", "BAG2"]),
        bag_manifest("BAG2", PARCELS[3:]),  # and one after
        unit_scan("AKE00001CK", "LINEHAUL_DEPARTED", 5, "HGH"),
        unit_scan("AKE00001CK", "LINEHAUL_ARRIVED", 17, "LGG"),
        unit_scan("AKE00001CK", "LINEHAUL_DEPARTED", 6, "PVG"),  # later duplicate departure: the first wins
    ]
    for _ in range(2):  # a replay changes nothing
        for record in records:
            if "members" in record:
                assert codec.validate("Manifest", record) == []
                writer.manifest(record)
            else:
                assert codec.validate("ScanEvent", record) == []
                found = unit_scan_of(record)
                assert found is not None
                writer.unit_scan(found)
        for version, tn in enumerate(PARCELS, start=1):
            writer.parcel(tn, version, fields("InTransit", "arrived_at_destination", "import_customs"))
    writer.parcel(PARCELS[0], 10, fields("CustomsHold", "held_import", "import_customs"))
    writer.parcel(PARCELS[1], 10, fields("Delivered", "delivered", ""))
    writer.parcel(PARCELS[1], 9, fields("InTransit", "sorted_at_hub", "hub"))  # older: ignored
    writer.remove_parcel(PARCELS[5])  # erased: leaves the counts (expected stays: the manifest said so)

    (row,) = board(redis_url, redis_prefix).movements
    assert row["movement"] == FLIGHT
    assert (row["kind"], row["movement_id"], row["carrier"], row["lane"], row["state"]) == (
        "flight",
        "CK261/157-12345675",
        "CK",
        "HGH-LGG",
        "arrived",
    )
    assert (row["departed_ms"], row["arrived_ms"]) == (BASE_TIME_MS + 5 * HOUR, BASE_TIME_MS + 17 * HOUR)
    assert row["expected"] == 6
    assert {name: row[name] for name in PARCEL_COUNTERS} == {
        "arrived": 5,
        "in_import_customs": 3,
        "held": 1,
        "cleared": 1,
        "sorted": 1,
        "handed_to_last_mile": 1,
        "delivered": 1,
        "exceptions": 0,
    }
    writer.manifest(unit_manifest("AKE00001CK", ["BAG2"], action="remove"))
    assert board(redis_url, redis_prefix).movements[0]["expected"] == 3


def test_the_board_is_newest_first_paged_and_filtered(
    writer: MovementWriter, redis_url: str, redis_prefix: str
) -> None:
    for n in range(5):
        refs = (
            {**REFS, "flight_number": None, "awb": None, "train_id": f"X800{n}"}
            if n % 2
            else {
                **REFS,
                "awb": f"157-0000000{n}",
            }
        )
        unit = f"UNIT{n}"
        found = unit_scan_of(unit_scan(unit, "LINEHAUL_DEPARTED", n, "CKG" if n % 2 else "HGH", refs))
        assert found is not None
        writer.unit_scan(found)
    page = board(redis_url, redis_prefix, limit=2)
    assert [row["movement_id"] for row in page.movements] == ["CK261/157-00000004", "X8003"]
    assert page.next_offset == 2
    rest = board(redis_url, redis_prefix, limit=2, offset=4)
    assert [row["movement_id"] for row in rest.movements] == ["CK261/157-00000000"]
    assert rest.next_offset is None
    trains = board(redis_url, redis_prefix, lane="CKG-?")
    assert [row["kind"] for row in trains.movements] == ["train", "train"]
    assert board(redis_url, redis_prefix, state="arrived").movements == []
    assert len(board(redis_url, redis_prefix, state="departed").movements) == 5


@pytest.mark.integration
def test_the_projector_builds_the_board_from_manifests_unit_scans_and_parcel_states(
    consumer_settings: ConsumerSettings,
    topics: TopicNames,
    bootstrap_servers: str,
    run_projector: Callable[[ConsumerSettings], Projector],
    redis_url: str,
) -> None:
    publish_records(
        bootstrap_servers,
        topics,
        [
            SimpleNamespace(kind="manifest", value=bag_manifest("BAG1", PARCELS[:3])),
            SimpleNamespace(kind="manifest", value=unit_manifest("AKE00001CK", ["BAG1"])),
            SimpleNamespace(kind="scan", value=unit_scan("AKE00001CK", "LINEHAUL_DEPARTED", 5, "HGH")),
            SimpleNamespace(kind="scan", value=unit_scan("AKE00001CK", "LINEHAUL_ARRIVED", 17, "LGG")),
        ],
    )
    projector = run_projector(consumer_settings)
    prefix = consumer_settings.redis_prefix
    wait_for(lambda: board(redis_url, prefix).movements, 90, "the flight on the board")
    wait_for(lambda: board(redis_url, prefix).movements[0]["expected"] == 3, 60, "3 expected parcels")
    states = [
        parcel_state(tn, 3, stage="import_customs", stage_entered_ms=BASE_TIME_MS + 17 * HOUR) for tn in PARCELS[:3]
    ]
    assert all(project(state).fields["stage"] == "import_customs" for state in states)
    StateProducer(bootstrap_servers, topics).send(*states)
    wait_for(lambda: board(redis_url, prefix).movements[0]["arrived"] == 3, 60, "3 arrived parcels")
    row = board(redis_url, prefix).movements[0]
    assert (row["lane"], row["state"], row["in_import_customs"]) == ("HGH-LGG", "arrived", 3)
    assert projector.stats.movement_records >= 4


@pytest.mark.integration
def test_a_board_update_that_fails_loses_that_update_only(
    consumer_settings: ConsumerSettings,
    topics: TopicNames,
    bootstrap_servers: str,
    run_projector: Callable[[ConsumerSettings], Projector],
    redis_url: str,
) -> None:
    prefix = consumer_settings.redis_prefix
    client = redis.Redis.from_url(redis_url)
    client.set(f"{prefix}:mv:{FLIGHT.replace(':', '%3A').replace('/', '%2F')}", "not a hash")  # WRONGTYPE
    publish_records(
        bootstrap_servers,
        topics,
        [
            SimpleNamespace(kind="manifest", value=unit_manifest("AKE00001CK", ["BAG1"])),
            SimpleNamespace(
                kind="scan",
                value=unit_scan(
                    "MSCU1234565",
                    "LINEHAUL_DEPARTED",
                    5,
                    "NGB",
                    {**REFS, "awb": None, "flight_number": None, "container": "MSCU1234565"},
                ),
            ),
        ],
    )
    StateProducer(bootstrap_servers, topics).send(parcel_state(PARCELS[0], 2))
    projector = run_projector(consumer_settings)
    wait_for(lambda: board(redis_url, prefix).movements, 90, "the container on the board despite the failed flight")
    wait_for(lambda: client.exists(f"{prefix}:parcel:{PARCELS[0]}"), 30, "the parcel in the read model")
    assert [row["movement"] for row in board(redis_url, prefix).movements] == ["sea:MSCU1234565"]
    assert projector.stats.batches >= 1
    client.close()
