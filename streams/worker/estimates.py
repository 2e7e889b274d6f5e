"""The worker's delivery-estimate learners (``streams.core.estimates``), one per input partition,
and their rows in the ``estimates`` table.

Why per partition: a Faust table is written only while processing an event, and the write goes to
the changelog partition of that event. A delivery is processed in its parcel's partition, so the
partition's learner learns from the parcels that partition owns and estimates them with what it
learned. Its rows (``<partition>/<route>|<step>|<service level>`` → JSON of the sketch) live in the
same changelog partition, so they move with the partition in a rebalance and are restored with it
after a restart. Several workers therefore do not combine their sketches: each partition is its own
sample of the traffic (keys are hashed, so every partition sees every lane), learning from
1/partitions of the deliveries. Rows are bounded by ``EstimateConfig.max_keys`` per partition.

A batch that fails after its learner saw a delivery keeps the sample in memory; the replayed
delivery then counts twice in this worker (until its next restore from the table). One delivery's
weight is negligible in a sketch of hundreds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

import orjson

from streams.core.estimates import DeliveryEstimates, EstimateConfig

log = logging.getLogger(__name__)


def table_key(partition: int, key: str) -> str:
    return f"{partition}/{key}"


class PartitionEstimates:
    def __init__(self, config: EstimateConfig) -> None:
        self.config = config
        self.learners: dict[int, DeliveryEstimates] = {}

    def for_partition(self, partition: int | None) -> DeliveryEstimates:
        """The learner of ``partition`` (None, outside Kafka: partition 0)."""
        number = partition or 0
        learner = self.learners.get(number)
        if learner is None:
            learner = self.learners[number] = DeliveryEstimates(self.config)
        return learner

    def changes(self) -> Iterator[tuple[int, str, bytes | None]]:
        """(partition, table key, JSON bytes or None to delete) of every row changed since the last
        call, once each."""
        for partition, learner in self.learners.items():
            for key in sorted(learner.changed):
                value = learner.dump(key)
                yield partition, table_key(partition, key), None if value is None else orjson.dumps(value)
            learner.changed.clear()

    def restore(self, rows: Iterable[tuple[str, bytes]], owned: set[int]) -> int:
        """Rebuild the learners of the ``owned`` partitions from the table's rows (after a rebalance
        or a restart); the others are dropped. Returns the number of rows loaded."""
        self.learners = {partition: DeliveryEstimates(self.config) for partition in owned}
        loaded = 0
        for row_key, value in rows:
            partition_text, _, key = row_key.partition("/")
            learner = self.learners.get(int(partition_text)) if partition_text.isdigit() else None
            if learner is None or not key:
                continue
            try:
                learner.load(key, orjson.loads(value))
            except (ValueError, KeyError, TypeError):
                log.warning("estimates: the stored row %r does not load; it is learned again", row_key)
                continue
            loaded += 1
        for learner in self.learners.values():
            # Loaded as stored, nothing to write back; rows over the key bound are deleted.
            learner.changed = {key for key in learner.changed if key not in learner.sketches}
        return loaded
