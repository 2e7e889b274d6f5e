"""The consumers' dead-letter producers are the pipeline's reliable producer: idempotent, acks=all and
keys hashed as Faust hashes them (else a dead letter's key lands in another partition than its record's)."""

from __future__ import annotations

from consumers.producer_config import producer_config
from schemas.topics import KEY_PARTITIONER


def test_the_producer_is_idempotent_acknowledged_by_all_and_hashes_keys_with_murmur2() -> None:
    config = producer_config("127.0.0.1:9092")
    assert config["bootstrap.servers"] == "127.0.0.1:9092"
    assert config["enable.idempotence"] is True
    assert config["acks"] == "all"
    assert config["partitioner"] == KEY_PARTITIONER == "murmur2_random"


def test_overrides_add_to_the_settings_and_replace_them() -> None:
    config = producer_config("broker:9092", **{"message.timeout.ms": 30_000, "linger.ms": 1})
    assert config["message.timeout.ms"] == 30_000
    assert config["linger.ms"] == 1
    assert config["acks"] == "all"
    assert "message.timeout.ms" not in producer_config("broker:9092")
