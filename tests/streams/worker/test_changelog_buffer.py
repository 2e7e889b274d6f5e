"""A batch's changelog writes do not stall the worker's consumer behind Faust's producer buffer
(``PARCELSTREAM_OUTPUT_PRODUCER=faust``: changelogs and outputs through Faust's producer)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from schemas.topics import TopicNames
from streams.settings import WorkerSettings
from streams.worker.agents import changelog_buffer_size
from tests.stages import PARTITIONS, StageLauncher, TopicReader, publish_records
from tests.streams.worker.test_worker import simulation, wait_for_truth

pytestmark = pytest.mark.integration


def test_the_producer_buffer_holds_two_batches_of_changelog_writes() -> None:
    assert changelog_buffer_size(WorkerSettings(batch_size=1000)) == 2000


def test_a_backlog_of_hundreds_of_parcels_is_processed_without_the_producer_buffer_filling_up(
    bootstrap_servers: str,
    topics_factory: Callable[..., TopicNames],
    stages: StageLauncher,
    readers: Callable[[str], TopicReader],
) -> None:
    topics = topics_factory(partitions=PARTITIONS)
    sim = simulation(seed=5, parcels=250)
    publish_records(bootstrap_servers, topics, sim.records)  # a backlog: batches of 1000 inputs
    states = readers(topics.parcel_state)
    # Changelogs on Faust's producer (by default they go through librdkafka, without Faust's buffer).
    worker = stages.worker(topics, log_level="warning", output_producer="faust")
    wait_for_truth(sim, states, [worker], timeout=180)
    # Faust warns each time the consumer waits for its buffer of changelog sends (100 by default).
    assert "producer buffer full" not in worker.log_text()
    assert worker.stop() == 0
