"""The stages' Kafka settings: publishers and dead-letter sinks are the pipeline's reliable producer
(idempotent, acks=all, keys hashed as Faust hashes them, else a record lands in another partition
than the rest of its parcel); group consumers commit themselves and poll briefly."""

from __future__ import annotations

from schemas.kafka_clients import FETCH_MAX_WAIT_MS, consumer_config, producer_config
from schemas.topics import KEY_PARTITIONER


def test_the_producer_is_idempotent_acknowledged_by_all_and_hashes_keys_with_murmur2() -> None:
    config = producer_config("127.0.0.1:9092")
    assert config["bootstrap.servers"] == "127.0.0.1:9092"
    assert config["enable.idempotence"] is True
    assert config["acks"] == "all"
    assert config["partitioner"] == KEY_PARTITIONER == "murmur2_random"
    assert config["compression.type"] == "lz4"


def test_overrides_add_to_the_settings_and_replace_them() -> None:
    config = producer_config("broker:9092", **{"message.timeout.ms": 10_000, "linger.ms": 1})
    assert config["message.timeout.ms"] == 10_000
    assert config["linger.ms"] == 1
    assert config["acks"] == "all"
    # A send gives up when the stages' flushes do (30 s), not after librdkafka's 300 s.
    assert producer_config("broker:9092")["message.timeout.ms"] == 30_000


def test_consumers_commit_themselves_start_at_the_beginning_and_poll_briefly() -> None:
    config = consumer_config("broker:9092", "projector", **{"session.timeout.ms": 6000})
    assert config["group.id"] == "projector"
    assert config["enable.auto.commit"] is False
    assert config["auto.offset.reset"] == "earliest"
    assert config["fetch.wait.max.ms"] == FETCH_MAX_WAIT_MS < 500
    assert config["session.timeout.ms"] == 6000
