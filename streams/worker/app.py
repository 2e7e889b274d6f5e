"""The Faust app of the stream processor, built from ``WorkerSettings``.

One app per topic prefix (app id ``<topic_prefix>-worker``, which is also the consumer group and
the prefix of the changelog topics), so parallel pipelines and tests never share state.
"""

from __future__ import annotations

import gc
from typing import Any

import faust
from faust.sensors import Monitor
from faust.types import TP, CollectionT, EventT, Message, StreamT

from streams.settings import WorkerSettings
from streams.worker.transport import DEFAULT_FETCH_MAX_WAIT_MS, WorkerTransport

#: Producer batches (bytes per partition): ParcelStates carry the parcel's history, so Faust's
#: 16 KiB default fills after a dozen messages and every few messages cost a produce request.
PRODUCER_MAX_BATCH_SIZE = 512 * 1024
#: Seconds the producer waits for a batch to fill; bounded by --batch-timeout's latency anyway.
PRODUCER_LINGER = 0.005
#: Collector thresholds for the batch loop. A batch of 1000 inputs allocates tens of thousands of
#: short-lived containers (decoded records, output dicts), so CPython's default young generation
#: (700) ran a collection every few scans; the decoded parcels kept between batches make the
#: older generations large, so they are collected less often too. Cycles are rare in the worker's
#: data (plain dicts and lists); the few the libraries make are still collected.
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """Call once the worker's modules are imported: the start-up heap (Faust, aiokafka, schemas)
    is moved out of the collector's reach (``gc.freeze``) and the thresholds set for batches."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class LeanMonitor(Monitor):
    """Faust's monitor without its per-message and per-key bookkeeping, which only Faust's web
    views read (the worker exports its own Prometheus metrics, docs/metrics.md)."""

    def on_message_in(self, tp: TP, offset: int, message: Message) -> None:
        pass

    def on_stream_event_in(self, tp: TP, offset: int, stream: StreamT, event: EventT) -> dict[str, Any] | None:
        return None

    def on_stream_event_out(
        self, tp: TP, offset: int, stream: StreamT, event: EventT, state: dict[str, Any] | None = None
    ) -> None:
        pass

    def on_message_out(self, tp: TP, offset: int, message: Message) -> None:
        pass

    def on_table_get(self, table: CollectionT, key: Any) -> None:
        pass

    def on_table_set(self, table: CollectionT, key: Any, value: Any) -> None:
        pass


class WorkerApp(faust.App):
    """faust.App on the worker's transport (streams/worker/transport.py)."""

    #: The consumer's fetch long-poll (streams/worker/transport.py, 3.); set from WorkerSettings.fetch_max_wait.
    fetch_max_wait_ms: int = DEFAULT_FETCH_MAX_WAIT_MS

    def _new_transport(self) -> WorkerTransport:
        return WorkerTransport(self.conf.broker_consumer, self)


def store_url(settings: WorkerSettings) -> str:
    # rocksdb:// needs the rocksdict package (faust-streaming's "rocksdict" extra).
    return "rocksdb://" if settings.store == "rocksdb" else "memory://"


def create_app(settings: WorkerSettings) -> faust.App:
    """A Faust app without agents; ``streams.worker.agents.install`` adds the processing."""
    app = WorkerApp(
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
        broker_commit_interval=settings.commit_interval,
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
        producer_max_batch_size=PRODUCER_MAX_BATCH_SIZE,
        producer_linger=PRODUCER_LINGER,
        # Room for a few batches of the agent (Faust's default 4096 is about 4 of 1000).
        stream_buffer_maxsize=max(4096, 4 * settings.batch_size),
        Monitor=LeanMonitor,
    )
    app.fetch_max_wait_ms = round(settings.fetch_max_wait * 1000)
    return app
