"""Checks and topic set-up before the worker starts, so a user meets one clear line instead of a
worker that retries forever: the broker answers, the topics exist (created with explicit configs
when missing) and the co-partitioned topics have the same partition count."""

from __future__ import annotations

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from schemas.topics import ALL_TOPICS, CO_PARTITIONED, TopicSpec
from streams.settings import WorkerSettings
from streams.worker.agents import sla_due_spec


class SetupError(RuntimeError):
    """Something to fix before the worker can run, said in one line."""


def worker_topics(settings: WorkerSettings) -> list[tuple[str, TopicSpec]]:
    """(name, spec) of every topic the worker reads or writes, its internal sla-due topic included."""
    named = [(spec.name(settings.topic_prefix), spec) for spec in ALL_TOPICS]
    due = sla_due_spec(settings)
    return [*named, (due.suffix, due)]


def ensure_topics(settings: WorkerSettings, timeout: float = 15.0) -> tuple[list[str], int]:
    """Create the missing topics; returns the names created and the partition count of the
    co-partitioned topics (which wins over ``settings.partitions`` for topics that already exist).
    Raises ``SetupError``."""
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers, "log_level": 0})
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as error:
        raise SetupError(
            f"cannot reach Kafka at {settings.bootstrap_servers} ({error.args[0].str()}); "
            "start it (`parcelstream dev up`) or set --bootstrap-servers / PARCELSTREAM_BOOTSTRAP_SERVERS"
        ) from None
    missing = [
        NewTopic(name, settings.partitions, settings.replication_factor, config=spec.config())
        for name, spec in worker_topics(settings)
        if name not in metadata.topics
    ]
    created = []
    if missing:
        futures = admin.create_topics(missing, operation_timeout=timeout, request_timeout=timeout)
        for name, future in futures.items():
            try:
                future.result(timeout=timeout)
                created.append(name)
            except KafkaException as error:
                if error.args[0].name() != "TOPIC_ALREADY_EXISTS":  # another worker was quicker
                    raise SetupError(f"cannot create topic {name}: {error.args[0].str()}") from None
        metadata = admin.list_topics(timeout=timeout)
    counts = {}
    for name in [spec.name(settings.topic_prefix) for spec in CO_PARTITIONED] + [sla_due_spec(settings).suffix]:
        topic = metadata.topics.get(name)
        counts[name] = len(topic.partitions) if topic is not None else 0
    if len(set(counts.values())) != 1:
        raise SetupError(
            "the co-partitioned topics need the same partition count, found "
            + ", ".join(f"{name}={count}" for name, count in counts.items())
        )
    return created, counts[settings.topics.scans]
