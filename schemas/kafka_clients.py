"""How the stages' librdkafka clients talk to the pipeline's topics: the one reliable producer every
publisher and dead-letter sink uses (no acknowledged record is lost or doubled, and keys land in the
partitions ``topics.py`` promises), and the group consumers that commit only what they have stored.
The Faust worker (aiokafka) keeps the same promises with its own settings in ``streams/``."""

from __future__ import annotations

from typing import Any

from schemas.topics import KEY_PARTITIONER


def producer_config(bootstrap_servers: str, **overrides: Any) -> dict[str, Any]:
    """Idempotent (a retried send is written once), acknowledged by every in-sync replica, keys hashed
    with murmur2 as Faust and every other producer of the pipeline do, batches compressed with lz4.
    A send fails after 30 s, the time the stages' flushes wait before they fail the batch (librdkafka
    would retry for 300 s). ``overrides`` are librdkafka settings, e.g. ``**{"linger.ms": 1}``."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        "partitioner": KEY_PARTITIONER,
        "linger.ms": 5,
        "compression.type": "lz4",
        "message.timeout.ms": 30_000,
        "log_level": 3,
    }
    config.update(overrides)
    return config


#: Milliseconds a fetch may wait on the broker for data. Apache Kafka answers as soon as data arrives;
#: Tansu (the embedded broker) holds a fetch for the whole wait, so librdkafka's 500 ms default
#: would be added to every tracking update's latency there.
FETCH_MAX_WAIT_MS = 100


def consumer_config(bootstrap_servers: str, group_id: str, **overrides: Any) -> dict[str, Any]:
    """A group consumer that commits its offsets itself (after the work is stored) and starts at the
    beginning of a partition it has no offset for."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap_servers,
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": FETCH_MAX_WAIT_MS,
        "log_level": 3,
    }
    config.update(overrides)
    return config
