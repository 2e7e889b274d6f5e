"""Schema evolution: a reader on v2 (new optional field) reads v1 data, and a v1 reader reads v2
data (Avro resolution drops the unknown field). Uses a test-only v2 beside copies of the real files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from schemas.codec import REGISTRY_FILE, SCHEMA_DIR, Codec, _load, schema_fingerprint

from .test_codec import SCAN

HERE = Path(__file__).parent


def _codec_with_v2(tmp_path: Path, *, include_v2: bool) -> Codec:
    schema_dir = tmp_path / "avro"
    shutil.copytree(SCHEMA_DIR, schema_dir)
    shutil.copy(HERE / "evolution" / "scan_event.v2.avsc", schema_dir)
    registry = json.loads(REGISTRY_FILE.read_text())
    if include_v2:
        parsed = _load(schema_dir, "scan_event.v2.avsc")
        registry["schemas"].append(
            {
                "id": 1001,
                "record": "ScanEvent",
                "version": 2,
                "file": "scan_event.v2.avsc",
                "fingerprint": schema_fingerprint(parsed),
            }
        )
    registry_file = tmp_path / f"registry-{include_v2}.json"
    registry_file.write_text(json.dumps(registry))
    return Codec(registry_file, schema_dir)


def test_v2_reader_reads_v1_data_with_the_default(tmp_path: Path) -> None:
    v1 = _codec_with_v2(tmp_path / "old", include_v2=False)
    v2 = _codec_with_v2(tmp_path / "new", include_v2=True)
    decoded = v2.decode(v1.encode("ScanEvent", SCAN))
    assert decoded.value["device_id"] is None
    assert decoded.value["event_id"] == SCAN["event_id"]


def test_v1_reader_reads_v2_data_when_it_knows_the_v2_schema(tmp_path: Path) -> None:
    # A v1 *reader* that has the v2 *writer* schema (from the registry) resolves v2 data to v1.
    v2 = _codec_with_v2(tmp_path / "new", include_v2=True)
    data = v2.encode("ScanEvent", dict(SCAN, device_id="scanner-7"))
    writer = v2.latest("ScanEvent")
    v1 = _codec_with_v2(tmp_path / "old", include_v2=False)
    v1_schema = v1.latest("ScanEvent")
    import io

    import fastavro

    value = fastavro.schemaless_reader(io.BytesIO(data[5:]), writer.parsed, v1_schema.parsed)
    assert "device_id" not in value
    assert value["tracking_number"] == SCAN["tracking_number"]
