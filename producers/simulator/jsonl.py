"""Simulated records in parcelstream's native JSON Lines layout (docs/formats.md), so a simulation
written with ``parcelstream simulate --output`` can be replayed with ``parcelstream publish``."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone
from typing import IO, Any

from producers.simulator.model import TimedRecord


def iso_time(epoch_ms: int, offset_minutes: int = 0) -> str:
    """UTC epoch ms → ISO-8601 with the local offset, e.g. ``2026-11-20T08:15:00.000+08:00``."""
    zone = UTC if offset_minutes == 0 else timezone(timedelta(minutes=offset_minutes))
    return datetime.fromtimestamp(epoch_ms / 1000, zone).isoformat(timespec="milliseconds")


def to_native(record: TimedRecord) -> dict[str, Any]:
    """One record as a native JSON Lines object: times as ISO-8601 strings, nulls left out."""
    value = record.value
    offset = value.get("utc_offset_minutes", 0)
    native: dict[str, Any] = {"type": record.kind}
    for name, field_value in value.items():
        if field_value is None or name == "utc_offset_minutes":
            continue
        if name == "event_time_ms":
            native["event_time"] = iso_time(field_value, offset)
        elif name == "recorded_time_ms":
            native["recorded_time"] = iso_time(field_value, offset)
        elif name == "references":
            references = {key: ref for key, ref in field_value.items() if ref is not None}
            if references:
                native["references"] = references
        elif name == "location":
            native["location"] = {key: part for key, part in field_value.items() if part is not None}
        elif name == "shipment":
            shipment = {key: part for key, part in field_value.items() if part is not None}
            shipment["ordered_time"] = iso_time(shipment.pop("ordered_time_ms"), offset)
            native["shipment"] = shipment
        else:
            native[name] = field_value
    return native


def write_jsonl(records: Iterable[TimedRecord], output: IO[str]) -> int:
    """Write the records in publish order, one JSON object per line; returns the line count."""
    lines = 0
    for record in records:
        output.write(json.dumps(to_native(record), ensure_ascii=False, separators=(",", ":")) + "\n")
        lines += 1
    return lines
