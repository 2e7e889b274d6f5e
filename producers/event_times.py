"""The edge check of event times (``schemas/event_time.py``) over parsed records, shared by the
publisher CLI and the ingest gateway: records outside the plausible range become issues
(``event_time_out_of_range``) and are dead-lettered instead of published."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable

from producers.formats import ParsedRecord, ParseIssue
from schemas.event_time import EVENT_TIME_OUT_OF_RANGE, EventTimeSettings, check_event_time


def record_bytes(record: ParsedRecord) -> bytes:
    """A parsed record as JSON, the dead-letter payload of a record refused after parsing."""
    return json.dumps(record.value, default=repr, sort_keys=True).encode()


def split_by_event_time(
    records: Iterable[ParsedRecord], bounds: EventTimeSettings, now_ms: int | None = None
) -> tuple[list[ParsedRecord], list[ParseIssue]]:
    """(records in range, one issue per record out of range) at ``now_ms`` (default: the wall clock)."""
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    kept: list[ParsedRecord] = []
    issues: list[ParseIssue] = []
    for record in records:
        reason = check_event_time(int(record.value["event_time_ms"]), now, bounds.max_future_ms, bounds.max_age_ms)
        if reason is None:
            kept.append(record)
        else:
            issues.append(
                ParseIssue(record.reference, "event_time", reason, record_bytes(record), EVENT_TIME_OUT_OF_RANGE)
            )
    return kept, issues
