"""``parcelstream parcels``: what the pipeline stores about a parcel, and a customer's erasure.

- ``erase TN... --reason TEXT`` publishes one ``ParcelCommand`` (action ``erase``) per parcel on
  ``<prefix>.parcel-commands``, keyed by the tracking number, and waits for the broker's
  acknowledgement. The stream processor that owns the parcel honours it, and so does the notifier
  (docs/streams.md, "Erasure"): it survives restarts and works with any number of workers.
- ``show TN`` prints what is stored: the Redis read model (hash, index memberships), and the latest
  ``parcel-state`` value and the worker's table value read from Kafka (the key's partition, from the
  beginning: a check before and after an erasure, not a hot path), and what the notifier holds for it
  (its tracking-number subscriptions, queued notifications, idempotency keys).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import redis
import typer
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from rich.console import Console

from consumers.notifier.store import OutboxWriter, SubscriptionStore
from consumers.read_model import Keys
from schemas.codec import default_codec
from schemas.kafka_clients import producer_config
from schemas.topics import TopicNames
from streams.core.clock import EventClock
from streams.settings import WorkerSettings
from streams.worker.processor import Processor

console = Console()
app = typer.Typer(help="What is stored about a parcel; a customer's erasure.", no_args_is_help=True)

BOOTSTRAP = typer.Option("127.0.0.1:9092", envvar="PARCELSTREAM_BOOTSTRAP_SERVERS", help="Kafka bootstrap servers.")
PREFIX = typer.Option("parcelstream", envvar="PARCELSTREAM_TOPIC_PREFIX", help="Topic name prefix.")
TRACKING_NUMBERS = typer.Argument(..., help="Tracking numbers to erase.")


def erase_command(tracking_number: str, reason: str, now_ms: int) -> dict[str, Any]:
    """The ParcelCommand dict of an erasure request."""
    return {
        "command_id": str(uuid.uuid4()),
        "tracking_number": tracking_number,
        "action": "erase",
        "reason": reason,
        "requested_time_ms": now_ms,
    }


@app.command("erase")
def erase(
    tracking_numbers: list[str] = TRACKING_NUMBERS,
    reason: str = typer.Option(..., help="Why (a ticket reference; no personal data: it is audited)."),
    bootstrap_servers: str = BOOTSTRAP,
    topic_prefix: str = PREFIX,
) -> None:
    """Erase every trace of these parcels (a customer's right to erasure), through Kafka."""
    codec = default_codec()
    topic = TopicNames(topic_prefix).parcel_commands
    producer = Producer(producer_config(bootstrap_servers))
    failures: list[str] = []

    def delivered(error: KafkaError | None, message: Any) -> None:
        if error is not None:
            failures.append(f"{message.key().decode()}: {error}")

    now_ms = time.time_ns() // 1_000_000
    for tracking_number in tracking_numbers:
        value = codec.encode("ParcelCommand", erase_command(tracking_number, reason, now_ms))
        producer.produce(topic, key=tracking_number.encode(), value=value, on_delivery=delivered)
    remaining = producer.flush(30)
    if failures or remaining:
        console.print(f"[red]error:[/red] not acknowledged: {failures or f'{remaining} commands'}")
        raise typer.Exit(1)
    console.print(f"{len(tracking_numbers)} erasure command(s) published on {topic}")


def _latest(bootstrap_servers: str, topic: str, key: bytes, timeout_s: float = 10.0) -> tuple[bool, bytes | None]:
    """(found, latest value or None for a tombstone) of ``key`` in a topic, read from the beginning."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap_servers, "group.id": f"parcels-show-{uuid.uuid4()}", "log_level": 0}
        | {"enable.auto.commit": False, "enable.partition.eof": True}
    )
    found, latest = False, None
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return False, None
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in metadata.partitions])
        ended: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while len(ended) < len(metadata.partitions) and time.monotonic() < deadline:
            for message in consumer.consume(1000, timeout=0.2):
                if message.error() is not None:
                    if message.error().code() == KafkaError._PARTITION_EOF:
                        ended.add(message.partition())
                    continue
                if message.key() == key:
                    found, latest = True, message.value()
    finally:
        consumer.close()
    return found, latest


@app.command("show")
def show(
    tracking_number: str = typer.Argument(..., help="The parcel's tracking number."),
    bootstrap_servers: str = BOOTSTRAP,
    topic_prefix: str = PREFIX,
    redis_url: str = typer.Option("redis://127.0.0.1:6379/0", envvar="PARCELSTREAM_REDIS_URL", help="Redis URL."),
    redis_prefix: str = typer.Option("parcelstream", envvar="PARCELSTREAM_REDIS_PREFIX", help="Read-model key prefix."),
) -> None:
    """Print what the pipeline stores about a parcel (Redis, parcel-state, the worker's table, the notifier)."""
    report: dict[str, Any] = {"tracking_number": tracking_number}
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    keys = Keys(redis_prefix)
    report["redis_hash"] = client.hgetall(keys.parcel(tracking_number)) or None
    report["redis_keys_naming_it"] = sorted(client.scan_iter(match=f"{redis_prefix}:*{tracking_number}*", count=1000))
    indexes = []
    for kind in ("status", "carrier", "route", "sla"):
        for key in client.scan_iter(match=f"{redis_prefix}:{kind}:*", count=1000):
            kind_of_key = client.type(key)
            if (kind_of_key == "set" and client.sismember(key, tracking_number)) or (
                kind_of_key == "zset" and client.zscore(key, tracking_number) is not None
            ):
                indexes.append(key)
    report["redis_indexes"] = sorted(indexes)
    notifier_client = redis.Redis.from_url(redis_url)
    try:
        subscriptions = SubscriptionStore(notifier_client, redis_prefix).count_of("tracking_number", tracking_number)
        report["notifier"] = {"subscriptions": subscriptions} | OutboxWriter(notifier_client, redis_prefix).holdings(
            tracking_number
        )
    finally:
        notifier_client.close()
    codec = default_codec()
    topics = TopicNames(topic_prefix)
    found, state = _latest(bootstrap_servers, topics.parcel_state, tracking_number.encode())
    report["parcel_state"] = (codec.decode(state).value if state else "tombstone") if found else None
    settings = WorkerSettings(topic_prefix=topic_prefix)
    changelog = f"{settings.app_id}-parcels-changelog"
    found, stored = _latest(bootstrap_servers, changelog, json.dumps(tracking_number).encode())  # Faust's keys
    if found and stored:
        processor = Processor(topics, settings.sla_rules(), EventClock(), codec)
        report["worker_table"] = {"bytes": len(stored), "stored": processor.stored_record(stored)}
    else:
        report["worker_table"] = "deleted" if found else None
    console.print_json(json.dumps(report, default=str))
