"""Test helpers of the read-model and tracking tests: ParcelState records and a producer for them (waiting on a
condition: ``tests.stages.wait_for``)."""

from __future__ import annotations

from typing import Any

from confluent_kafka import Producer

from consumers.settings import ConsumerSettings
from schemas.codec import default_codec
from schemas.topics import KEY_PARTITIONER, TopicNames

BASE_TIME_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
TRACKING_SECRET = "test-tracking-secret"
#: The postcode key of settings with TRACKING_SECRET and no PARCELSTREAM_POSTCODE_KEY (derived from it).
POSTCODE_KEY = ConsumerSettings(tracking_secret=TRACKING_SECRET).postcode_hash_key
OPERATIONS_KEY = "test-operations-key"


def history_entry(index: int, status: str, location: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "event_id": f"ev-{index:03d}",
        "code": "HUB_SORTED",
        "raw_code": "sorting",
        "status": status,
        "sub_status": f"{status}_001",
        "event_time_ms": BASE_TIME_MS + index * 3_600_000,
        "utc_offset_minutes": 60,
        "location": location,
        "carrier": "bpost",
        "reason": None,
    }


def parcel_state(
    tracking_number: str,
    version: int,
    status: str = "InTransit",
    *,
    location: dict[str, Any] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """A ParcelState of ``version`` scans; its history has one entry per scan, the last in ``status``."""
    location = location or {"code": "LGG", "kind": "airport", "country": "BE", "name": "Liège Airport"}
    history = [history_entry(i, "InTransit") for i in range(1, version)] + [history_entry(version, status, location)]
    state: dict[str, Any] = {
        "tracking_number": tracking_number,
        "status": status,
        "sub_status": f"{status}_001",
        "last_event_id": f"ev-{version:03d}",
        "last_event_time_ms": BASE_TIME_MS + version * 3_600_000,
        "last_location": location,
        "estimated_delivery": {
            "earliest_ms": BASE_TIME_MS + 5 * 86_400_000,
            "latest_ms": BASE_TIME_MS + 7 * 86_400_000,
            "promised_ms": BASE_TIME_MS + 10 * 86_400_000,
        },
        "on_time": True,
        "service_level": "standard",
        "route": "HGH-LGG-BE",
        "carrier": "bpost",
        "destination_postcode": "1000 BX",
        "merchant": "shop-1",
        "history": history,
        "open_sla": [],
        "version": version,
    }
    state.update(overrides)
    return state


class StateProducer:
    """Publishes ParcelState records (and raw bytes) keyed by tracking number, as streams would."""

    def __init__(self, bootstrap_servers: str, topics: TopicNames) -> None:
        self.topics = topics
        self._producer = Producer(
            {"bootstrap.servers": bootstrap_servers, "partitioner": KEY_PARTITIONER, "acks": "all", "log_level": 3}
        )
        self._errors: list[str] = []

    def _report(self, error: Any, _message: Any) -> None:
        if error is not None:
            self._errors.append(error.str())

    def send(self, *states: dict[str, Any]) -> None:
        for state in states:
            value = default_codec().encode("ParcelState", state)
            self.send_raw(state["tracking_number"].encode(), value)
        self.flush()

    def send_raw(self, key: bytes | None, value: bytes | None) -> None:
        self._producer.produce(self.topics.parcel_state, key=key, value=value, on_delivery=self._report)

    def flush(self) -> None:
        assert self._producer.flush(30) == 0, "records not acknowledged"
        assert not self._errors, self._errors


def seed(client: Any, prefix: str, *states: dict[str, Any]) -> None:
    """Write states to Redis as the projector would (plans applied in one MULTI/EXEC), without Kafka."""
    from consumers.projector import queue_plan
    from consumers.read_model import Keys, StoredIndexEntry, plan_write, project

    keys = Keys(prefix)
    for state in states:
        projected = project(state, POSTCODE_KEY)
        stored = StoredIndexEntry.from_values(
            client.hmget(keys.parcel(projected.tracking_number), StoredIndexEntry.FIELDS)
        )
        plan = plan_write(keys, projected, stored)
        if plan is None:
            continue
        with client.pipeline(transaction=True) as pipe:
            queue_plan(pipe, plan)
            pipe.execute()
