"""The stored parcel's bytes: the ParcelState spliced from the stored history is exactly what the
codec writes, the table value round-trips, and a stored history chunk is compressed only once."""

from __future__ import annotations

import io
import random
import statistics
import zlib

import fastavro
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producers.simulator import SimulationConfig, simulate
from schemas.codec import default_codec
from streams.worker import serde
from streams.worker.serde import (
    CHUNK_ENTRIES,
    AvroEntryCodec,
    ParcelStateEncoder,
    decode_parcel,
    encode_parcel,
    pack_outputs,
    unpack_outputs,
)
from tests.streams.builders import HOUR, T0, Pipeline, scan
from tests.streams.core.test_properties import Journey, journeys

CODEC = default_codec()
ENCODER = ParcelStateEncoder(CODEC)
ENTRIES: AvroEntryCodec = ENCODER.entries


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(journey=journeys(), seed=st.randoms(use_true_random=False))
def test_every_state_along_a_journey_encodes_as_the_codec_does_and_round_trips_in_its_table(
    journey: Journey, seed: random.Random
) -> None:
    pipeline = Pipeline(codec=ENTRIES)
    messages = list(journey.messages)
    seed.shuffle(messages)  # late events land inside the stored histories
    for kind, value in messages:
        pipeline.feed(kind, value)
        for number, parcel in pipeline.parcels.items():
            record = parcel.to_record()
            assert ENCODER.encode(parcel) == CODEC.encode("ParcelState", record)
            assert CODEC.decode(ENCODER.encode(parcel)).value == record
            stored = decode_parcel(encode_parcel(parcel), ENTRIES)
            assert stored.to_dict() == parcel.to_dict() and stored.to_record() == record
            pipeline.parcels[number] = stored  # go on from the stored value, as the worker does


@pytest.fixture
def compressed(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The chunks the stored-parcel encoder compresses, in order."""
    chunks: list[bytes] = []
    original = serde.compress_chunk

    def counting(data: bytes) -> bytes:
        chunks.append(data)
        return original(data)

    monkeypatch.setattr(serde, "compress_chunk", counting)
    return chunks


def test_a_full_chunk_of_the_history_is_compressed_once(compressed: list[bytes]) -> None:
    pipeline = Pipeline(codec=ENTRIES)
    for n in range(3 * CHUNK_ENTRIES + 2):
        pipeline.feed("scan", scan("HUB_SORTED", T0 + n * HOUR, f"e{n}"))
        parcel = pipeline.parcels["LP00123456789CN"]
        pipeline.parcels[parcel.tracking_number] = decode_parcel(encode_parcel(parcel), ENTRIES)
    assert len(compressed) == 3  # each full chunk once, whatever the number of writes
    pipeline.feed("scan", scan("HUB_SORTED", T0 + HOUR // 2, "late"))  # inserted: the chunks again
    encode_parcel(pipeline.parcels["LP00123456789CN"])
    assert len(compressed) == 6


@pytest.mark.parametrize(
    ("hours", "recompressed"),
    [
        (3 * CHUNK_ENTRIES + 0.5, 0),  # in the open chunk: every sealed chunk stays
        (2 * CHUNK_ENTRIES - 1.5, 2),  # the second chunk's last entry moves: it and the third again
        (CHUNK_ENTRIES + 0.5, 2),
        (0.5, 3),
    ],
)
def test_an_insert_compresses_again_only_the_chunks_from_its_place(
    compressed: list[bytes], hours: float, recompressed: int
) -> None:
    pipeline = Pipeline(codec=ENTRIES)
    for n in range(3 * CHUNK_ENTRIES + 2):
        pipeline.feed("scan", scan("HUB_SORTED", T0 + n * HOUR, f"e{n}"))
    parcel = pipeline.parcels["LP00123456789CN"]
    encode_parcel(parcel)
    stored = decode_parcel(encode_parcel(parcel), ENTRIES)
    for kept in (parcel, stored):  # kept by the warm cache, or read back from the table
        compressed.clear()
        pipeline.parcels[parcel.tracking_number] = kept.copy()
        pipeline.feed("scan", scan("HUB_SORTED", T0 + int(hours * HOUR), "late"))
        late = pipeline.parcels[parcel.tracking_number]
        data = encode_parcel(late)
        assert len(compressed) == recompressed
        fresh = decode_parcel(data, ENTRIES)
        fresh.history.memo = None  # nothing kept: every chunk compressed from the entries
        assert encode_parcel(fresh) == data
        assert fresh.to_record() == late.to_record()


def test_a_typical_journey_is_stored_in_under_3_kb() -> None:
    sim = simulate(SimulationConfig(seed=11, parcels=150))
    pipeline = Pipeline(codec=ENTRIES)
    for record in sim.records:
        pipeline.feed(record.kind, record.value)
    sizes = [len(encode_parcel(parcel)) for parcel in pipeline.parcels.values()]
    entries = [len(parcel.history) for parcel in pipeline.parcels.values()]
    assert statistics.mean(entries) > 15  # a whole journey, ~18 scans
    assert statistics.mean(sizes) <= 3000, statistics.mean(sizes)


def test_outputs_pack_and_unpack() -> None:
    outputs = [("a", b"k", b"v"), ("b", None, b""), ("c", b"", b"\x00" * 300)]
    assert unpack_outputs(pack_outputs(outputs)) == outputs
    assert unpack_outputs(pack_outputs([])) == []


def test_a_parcel_stored_as_json_by_earlier_versions_loads_and_goes_on() -> None:
    pipeline = Pipeline(codec=ENTRIES)
    journey = [
        scan(
            "ORDER_CREATED",
            T0,
            "o",
            with_shipment={
                "service_level": "express",
                "flow": "import",
                "origin_country": "CN",
                "destination_country": "BE",
                "destination_postcode": "4000",
                "merchant": "shop-1",
                "ordered_time_ms": T0,
            },
        ),
        scan(
            "LINEHAUL_DEPARTED",
            T0 + HOUR,
            "dep",
            where={"code": "HGH", "kind": "airport", "country": "CN", "name": None},
        ),
        scan(
            "LINEHAUL_ARRIVED",
            T0 + 20 * HOUR,
            "arr",
            where={"code": "LGG", "kind": "airport", "country": "BE", "name": None},
        ),
        scan("HUB_SORTED", T0 + 22 * HOUR, "hub"),
    ]
    for event in journey:
        pipeline.feed("scan", event)
    parcel = pipeline.parcels["LP00123456789CN"]
    history = parcel.to_record()["history"]
    legacy = {  # the JSON table value of earlier versions, with the whole history and a replay record
        "tracking_number": parcel.tracking_number,
        "history": history,
        "shipment": parcel.shipment,
        "shipment_key": list(parcel.shipment_key or ()),
        "first_seen": {
            h["code"]: [h["event_time_ms"], h["event_id"], (h["location"] or {}).get("code")] for h in history
        },
        "current_index": len(history) - 1,
        "run_counts": {f"{h['status']}|{h['sub_status']}": 1 for h in history},
        "update_sequence": parcel.update_sequence,
        "estimated_delivery": parcel.estimated_delivery,
        "estimate_on_time": parcel.estimate_on_time,
        "sla_emitted": [],
        "sla_open": {},
        "recorded": [["o", [], []]],
        "stages": parcel.stages.to_list(),
    }
    loaded = decode_parcel(orjson.dumps(legacy), ENTRIES)
    assert loaded.to_record() == parcel.to_record()
    assert decode_parcel(encode_parcel(loaded), ENTRIES).to_dict() == loaded.to_dict()


def fastavro_entries(blob: bytes, count: int) -> list[dict[str, object]]:
    buffer = io.BytesIO(blob)
    return [fastavro.schemaless_reader(buffer, ENTRIES.schema, None) for _ in range(count)]  # type: ignore[misc]


def test_history_entries_are_read_by_the_generated_reader_as_fastavro_reads_them() -> None:
    pipeline = Pipeline(codec=ENTRIES)
    for record in simulate(SimulationConfig(seed=4, parcels=40)).records:
        pipeline.feed(record.kind, record.value)
    for parcel in pipeline.parcels.values():
        history = parcel.history
        assert ENTRIES.decode(history.blob, history.sizes) == fastavro_entries(history.blob, len(history.sizes))
    # Damaged bytes (a length past the end): fastavro's verdict, not a half-read history.
    history = next(iter(pipeline.parcels.values())).history
    damaged = history.blob[:-3]
    with pytest.raises(EOFError):
        fastavro_entries(damaged, len(history.sizes))
    with pytest.raises(EOFError):
        ENTRIES.decode(damaged, history.sizes)


def test_a_value_of_the_first_format_deflated_with_the_earlier_parameters_still_loads(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def earlier_deflate(data: bytes) -> bytes:  # format P1 as first written: level 6, 32 kB window, memLevel 9
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, serde.ZDICT)
        return compressor.compress(data) + compressor.flush()

    class DeflatingFirstPart:  # P1 deflated the header and the open chunk too
        compress = staticmethod(earlier_deflate)

    # A carrier's long text repeated 9 kB apart: only a 32 kB window finds the repeats.
    reason = "".join(random.Random(1).choices("abcdefghijklmnopqrstuvwxyz ", k=9000))
    pipeline = Pipeline(codec=ENTRIES)
    for n in range(2 * CHUNK_ENTRIES + 3):  # sealed chunks and an open one
        pipeline.feed("scan", {**scan("HUB_SORTED", T0 + n * HOUR, f"e{n}"), "reason": reason})
    parcel = pipeline.parcels["LP00123456789CN"]
    with monkeypatch.context() as patched:
        patched.setattr(serde, "_deflate", earlier_deflate)
        patched.setattr(serde, "_ZSTD_COMPRESSOR", DeflatingFirstPart())
        patched.setattr(serde, "PARCEL_FORMAT", b"P1")
        earlier = encode_parcel(parcel.copy())
    assert earlier[:2] == b"P1" and encode_parcel(parcel.copy())[:2] == b"P2"
    assert len(earlier) < len(encode_parcel(parcel.copy()))
    stored = decode_parcel(earlier, ENTRIES)
    assert stored.to_dict() == parcel.to_dict() and stored.to_record() == parcel.to_record()
