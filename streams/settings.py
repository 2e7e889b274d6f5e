"""Settings of the stream-processor worker, read from ``PARCELSTREAM_*`` environment variables
(``streams/cli.py`` flags override them)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from schemas.event_time import EventTimeSettings
from schemas.settings import PipelineSettings
from streams.core.consolidation import DEFAULT_MAX_FANOUT_DEPTH
from streams.core.estimates import EstimateConfig
from streams.core.rules import DAY_MS, HOUR_MS, Retention, SlaRules


class SlaSettings(PipelineSettings):
    """``PARCELSTREAM_SLA_*`` variables; the worker's settings extend this class."""

    sla_promise_standard_days: float = Field(10.0, gt=0, description="Delivery promise of the standard service")
    sla_promise_express_days: float = Field(5.0, gt=0, description="Delivery promise of the express service")
    sla_promise_economy_days: float = Field(20.0, gt=0, description="Delivery promise of the economy service")
    sla_customs_clearance_hours: float = Field(24.0, gt=0, description="Import customs cleared after arrival within")
    sla_hub_dwell_hours: float = Field(12.0, gt=0, description="Arrival to last-mile handover within")
    sla_last_mile_delivery_hours: float = Field(48.0, gt=0, description="Handover to delivery within")
    sla_silence_hours: float = Field(72.0, gt=0, description="No scan for this long while in transit: maybe lost")
    sla_at_risk_fraction: float = Field(
        0.8, gt=0, lt=1, description="At-risk warning once this fraction of a rule's window has passed"
    )

    def sla_rules(self) -> SlaRules:
        """The core's plain ``SlaRules`` from these settings."""
        return SlaRules(
            promise_ms={
                "standard": round(self.sla_promise_standard_days * DAY_MS),
                "express": round(self.sla_promise_express_days * DAY_MS),
                "economy": round(self.sla_promise_economy_days * DAY_MS),
            },
            customs_clearance_ms=round(self.sla_customs_clearance_hours * HOUR_MS),
            hub_dwell_ms=round(self.sla_hub_dwell_hours * HOUR_MS),
            last_mile_delivery_ms=round(self.sla_last_mile_delivery_hours * HOUR_MS),
            silence_ms=round(self.sla_silence_hours * HOUR_MS),
            at_risk_fraction=self.sla_at_risk_fraction,
        )


StoreKind = Literal["memory", "rocksdb"]
OutputProducerKind = Literal["librdkafka", "faust"]
LogLevel = Literal["debug", "info", "warning", "error"]


class WorkerSettings(SlaSettings, EventTimeSettings):
    clock_speed: float = 1.0
    """Event-time seconds per wall second for the SLA clock: 1 in production; the demo passes the
    simulator's time compression so at-risk/breach timers fire while the simulated day runs."""
    metrics_port: int = 0
    """Port of the Prometheus /metrics endpoint; 0 turns it off."""
    store: StoreKind = "memory"
    """Table storage: memory (rebuilt from the changelog topics at start) or rocksdb (on disk)."""
    data_dir: Path = Path(".parcelstream/streams")
    """Directory for the worker's local state (RocksDB tables)."""
    log_level: LogLevel = "info"
    sla_timer_interval: float = 1.0
    """Seconds between two sweeps of the SLA timer, which fires deadlines no scan will trigger."""
    web_port: int = 0
    """Port of Faust's own web server (worker introspection); 0 turns it off."""
    replication_factor: int = 1
    """Replication of the changelog topics the worker creates (3 on a production cluster)."""
    batch_size: int = Field(1000, ge=1)
    """Most messages the agent processes as one batch (one table write per key, one ParcelState per
    parcel per batch)."""
    batch_timeout: float = Field(0.02, gt=0)
    """Seconds the agent waits for a batch to fill before it processes what it has, counted from the
    end of the previous batch (Faust's ``take_events``): at low load every record waits up to this
    long; under load a batch also holds what arrived while the previous one was processed, so
    batches grow with the load. At 0.1 records waited ~70 ms on average for their batch at
    150 records/s; shorter waits cost CPU per record at low load (benchmarks/README.md, "Where the
    latency goes")."""
    rocksdb_write_buffer_mb: int = Field(4, ge=1)
    """RocksDB memtable size per table partition (two are kept): Faust's default is 64 MiB x 3."""
    rocksdb_block_cache_mb: int = Field(16, ge=1)
    """RocksDB block cache per table partition: Faust's default is 2 GiB. With the write buffers it
    bounds the store's memory: about (2 x write buffer + block cache) x 2 tables x partitions owned."""
    max_scans_per_parcel: int = Field(500, ge=1)
    """History entries a parcel keeps at most; later scans are dead-lettered ``too_many_scans``."""
    retention_days: float = Field(30.0, gt=0)
    """Days (event time) a closed parcel (delivered, returned, lost, expired) is kept before it is archived."""
    expire_days: float = Field(60.0, gt=0)
    """Days without a scan after which an open parcel expires; also how long an archived parcel's
    marker refuses late scans (``parcel_archived``) before it is deleted."""
    unit_retention_days: float = Field(7.0, gt=0)
    """Days after its last scan or manifest a handling unit is forgotten (a reused ULD id starts afresh)."""
    max_unit_members: int = Field(10_000, ge=1)
    """Members a handling unit keeps at most; a manifest past it is dead-lettered ``unit_too_large``."""
    state_cache_size: int = Field(50_000, ge=0)
    """Decoded parcels and units kept between batches (cleared on every rebalance); 0 turns it off."""
    fetch_max_wait: float = Field(0.1, gt=0, le=30)
    """Seconds a fetch may wait on the broker for data. Apache Kafka answers as soon as data arrives,
    so there it only bounds idle polling; Tansu waits it out, so it adds up to this much latency."""
    output_producer: OutputProducerKind = "librdkafka"
    """Producer of the outputs and of the table changelog records: librdkafka (confluent-kafka, C) or
    faust (Faust's aiokafka producer, pure Python). Either way a batch's changelog records are
    acknowledged before its outputs are sent, and its outputs before its input offsets are committed."""
    commit_interval: float = Field(2.8, gt=0)
    """Seconds between two commits of the processed input offsets (Faust's default 2.8). A restart
    replays at most this much input (outputs are idempotent), so it trades replay for commits."""
    max_fanout_depth: int = Field(DEFAULT_MAX_FANOUT_DEPTH, ge=1)
    """Handling units a fan-out copy may pass through (container > ULD > bag > parcel is 3); a copy
    that would go deeper is dead-lettered ``fanout_too_deep``."""
    estimate_half_life_hours: float = Field(72.0, gt=0)
    """Learned delivery estimates: a delivery's weight halves every this many hours of event time, so
    a change in a lane (a strike, a holiday) takes over its estimates within a few of them."""
    estimate_min_deliveries: float = Field(10.0, ge=1)
    """Deliveries (decayed) a route, step and service level needs before its learned window replaces
    the heuristic one."""
    estimate_low_quantile: float = Field(0.05, ge=0, lt=1)
    """Quantile of the remaining time that makes the window's earliest end."""
    estimate_high_quantile: float = Field(0.95, gt=0, le=1)
    """Quantile of the remaining time that makes the window's latest end."""
    broker_rebalance_timeout: float = 6.0
    """Seconds a consumer-group rebalance may take (Kafka's rebalance.timeout.ms, in seconds)."""
    broker_session_timeout: float = 10.0
    broker_heartbeat_interval: float = 1.0

    def estimate_config(self) -> EstimateConfig:
        """The core's plain ``EstimateConfig`` from these settings."""
        return EstimateConfig(
            half_life_ms=round(self.estimate_half_life_hours * HOUR_MS),
            min_deliveries=self.estimate_min_deliveries,
            low_quantile=self.estimate_low_quantile,
            high_quantile=self.estimate_high_quantile,
        )

    def retention(self) -> Retention:
        """The core's plain ``Retention`` from these settings."""
        return Retention(
            retention_ms=round(self.retention_days * DAY_MS),
            expire_ms=round(self.expire_days * DAY_MS),
            unit_retention_ms=round(self.unit_retention_days * DAY_MS),
        )

    @property
    def app_id(self) -> str:
        """Faust app id, also the consumer group and the changelog topics' prefix."""
        return f"{self.topic_prefix}-worker"
