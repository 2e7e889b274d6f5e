"""Settings of the consumers' Kafka producers (the projector's and the notifier's dead letters): the
reliable producer of the pipeline, as ``producers/publisher.py`` configures its own (consumers do not
import producers/)."""

from __future__ import annotations

from typing import Any

from schemas.topics import KEY_PARTITIONER


def producer_config(bootstrap_servers: str, **overrides: Any) -> dict[str, Any]:
    """Idempotent (a retried send is written once), acknowledged by every in-sync replica, keys hashed
    with murmur2 as Faust and every other producer of the pipeline do. ``overrides`` are librdkafka
    settings, e.g. ``**{"message.timeout.ms": 30_000}``."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        "partitioner": KEY_PARTITIONER,
        "linger.ms": 5,
        "log_level": 3,
    }
    config.update(overrides)
    return config
