"""The DeadLetter record every stage writes (schemas/avro/dead_letter.v1.avsc), built in one place.

Its id is stable: the same input rejected again by the same stage (a replay, a restart, a retry
of the same file) gets the same ``dead_letter_id``, so the dead-letter topic can be de-duplicated.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Final

#: A dead letter keeps at most this much of the rejected payload, so that it fits in a Kafka message.
MAX_PAYLOAD_BYTES: Final = 256 * 1024
#: Reason code of a record whose handling raised, in every consuming stage (worker, projector,
#: notifier): the record is dead-lettered and the stage goes on.
PROCESSING_ERROR: Final = "processing_error"


def processing_error_reason(error: BaseException) -> str:
    """The reason of a ``processing_error``: the exception class names the bug; the message is cut,
    since it may quote the record."""
    return f"{type(error).__name__}: {str(error)[:500]}"


def dead_letter_record(
    *,
    stage: str,
    reason_code: str,
    reason: str,
    payload: bytes,
    key: bytes | None = None,
    source_topic: str | None = None,
    source_partition: int | None = None,
    source_offset: int | None = None,
    source_reference: str | None = None,
    recorded_time_ms: int | None = None,
) -> dict[str, Any]:
    """A DeadLetter dict; the input is named by topic/partition/offset or by ``source_reference``."""
    origin = source_reference or f"{source_topic}:{source_partition}:{source_offset}"
    dead_letter_id = hashlib.sha256(f"{stage}|{origin}|".encode() + payload).hexdigest()[:32]
    if len(payload) > MAX_PAYLOAD_BYTES:
        reason = f"{reason} (payload of {len(payload)} bytes cut to its first {MAX_PAYLOAD_BYTES})"
        payload = payload[:MAX_PAYLOAD_BYTES]
    return {
        "dead_letter_id": dead_letter_id,
        "stage": stage,
        "reason_code": reason_code,
        "reason": reason,
        "source_topic": source_topic,
        "source_partition": source_partition,
        "source_offset": source_offset,
        "source_reference": source_reference,
        "key": key,
        "payload": payload,
        "recorded_time_ms": recorded_time_ms if recorded_time_ms is not None else time.time_ns() // 1_000_000,
    }
