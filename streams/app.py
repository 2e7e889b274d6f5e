"""The Faust app of the stream processor, built from ``WorkerSettings``.

One app per topic prefix (app id ``<topic_prefix>-worker``, which is also the consumer group and
the prefix of the changelog topics), so parallel pipelines and tests never share state.
"""

from __future__ import annotations

import faust

from streams.settings import WorkerSettings


def store_url(settings: WorkerSettings) -> str:
    # rocksdb:// needs the rocksdict package (faust-streaming's "rocksdict" extra).
    return "rocksdb://" if settings.store == "rocksdb" else "memory://"


def create_app(settings: WorkerSettings) -> faust.App:
    """A Faust app without agents; ``streams.agents.install`` adds the processing."""
    return faust.App(
        settings.app_id,
        broker=[f"kafka://{server.strip()}" for server in settings.bootstrap_servers.split(",") if server.strip()],
        store=store_url(settings),
        datadir=str(settings.data_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        # Standby replicas would keep other workers' partitions in this worker's memory store too.
        table_standby_replicas=0,
        broker_rebalance_timeout=settings.broker_rebalance_timeout,
        broker_session_timeout=settings.broker_session_timeout,
        broker_heartbeat_interval=settings.broker_heartbeat_interval,
        consumer_auto_offset_reset="earliest",
        # Every topic and table holds bytes we encode ourselves (Avro on topics, JSON in tables).
        key_serializer="raw",
        value_serializer="raw",
        # At-least-once: outputs are idempotent (stable ids), exactly_once has duplicate bugs on rebalance.
        processing_guarantee="at_least_once",
        web_enabled=settings.web_port > 0,
        web_port=settings.web_port or 6066,
        web_bind="127.0.0.1",
        autodiscover=False,
    )
