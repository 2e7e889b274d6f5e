"""Soak: simulator traffic → worker → projector at a sustained rate for N minutes, sampling each
process's resident memory and its consumer group's lag every few seconds.

    python -m tests.reliability.soak --minutes 10 --rate 300

Fails (exit 1) when a process's memory grows by more than --max-rss-growth-mb after the warm-up
(the first quarter of the run), or when the lag does not drain within --drain-seconds after the
traffic stops.

A month in minutes (retention on):

    python -m tests.reliability.soak --simulated-days 30 --parcels-per-hour 6 --rate 400 \
        --retention-days 5 --expire-days 10 --unit-retention-days 3

sends the orders of 30 simulated days (``--parcels-per-hour`` parcels per simulated hour, each
with its whole journey), as fast as ``--rate`` allows, and at simulated day 1, 10, 20 and 30 (order
time) reports the worker's RSS, its RocksDB bytes on disk, the keys of its parcels and units
tables (their changelogs' latest values), and Redis ``used_memory`` and key count under the run's
prefix. With retention on they must level off instead of growing with the parcels ever seen.

Uses the broker in PARCELSTREAM_BOOTSTRAP_SERVERS or starts an embedded one, and the Redis in
PARCELSTREAM_REDIS_URL (default redis://127.0.0.1:6379/0).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import typer
from confluent_kafka import Consumer, TopicPartition
from rich.console import Console
from rich.table import Table

from deploy.embedded import EmbeddedBroker, StackError, check_redis, create_topics
from producers.publisher import Publisher
from producers.simulator import SimulationConfig, simulate
from producers.simulator.model import AnomalyRates
from schemas.topics import TopicNames
from tests.conftest import unique
from tests.stages import PARTITIONS, StageLauncher, StageProcess

console = Console(stderr=True)
MB = 1024 * 1024


@dataclass
class Sample:
    elapsed_s: float
    published: int
    rss_mb: dict[str, float]
    lag: dict[str, int]


@dataclass
class SoakResult:
    samples: list[Sample] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    published: int = 0
    drained_after_s: float | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def table(self) -> Table:
        names = sorted(self.samples[0].rss_mb) if self.samples else []
        table = Table("t (s)", "published", *(f"{n} RSS MB" for n in names), *(f"{n} lag" for n in names))
        for sample in self.samples:
            table.add_row(
                f"{sample.elapsed_s:.0f}",
                f"{sample.published:,}",
                *(f"{sample.rss_mb[n]:.0f}" for n in names),
                *(f"{sample.lag[n]:,}" for n in names),
            )
        return table


def group_lag(bootstrap_servers: str, group_id: str, topic: str) -> int:
    """Messages of ``topic`` the group has not committed yet."""
    probe = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group_id, "log_level": 0})
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        committed = probe.committed(partitions, timeout=10)
        lag = 0
        for tp in committed:
            _low, high = probe.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)
            lag += max(0, high - max(tp.offset, 0))
        return lag
    finally:
        probe.close()


def table_keys(bootstrap_servers: str, topic: str) -> int:
    """Keys whose latest value in a changelog is not a tombstone."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap_servers, "group.id": unique("soak-keys"), "enable.partition.eof": True}
        | {"log_level": 0}
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return 0
        consumer.assign([TopicPartition(topic, p, 0) for p in metadata.partitions])
        live: dict[bytes, bool] = {}
        ended: set[int] = set()
        deadline = time.monotonic() + 120
        while len(ended) < len(metadata.partitions) and time.monotonic() < deadline:
            for message in consumer.consume(5000, timeout=0.5):
                if message.error() is not None:
                    ended.add(message.partition())
                elif message.key() is not None:
                    live[message.key()] = message.value() is not None
        return sum(live.values())
    finally:
        consumer.close()


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


@dataclass
class DaySample:
    day: int
    parcels_ordered: int
    worker_rss_mb: float
    rocksdb_mb: float
    parcels_keys: int
    units_keys: int
    redis_used_memory_mb: float
    redis_keys: int


def month_table(samples: list[DaySample]) -> Table:
    table = Table(
        "day", "parcels ordered", "worker RSS MB", "RocksDB MB", "parcels keys", "units keys", "Redis MB", "Redis keys"
    )
    for s in samples:
        table.add_row(
            str(s.day),
            f"{s.parcels_ordered:,}",
            f"{s.worker_rss_mb:.0f}",
            f"{s.rocksdb_mb:.1f}",
            f"{s.parcels_keys:,}",
            f"{s.units_keys:,}",
            f"{s.redis_used_memory_mb:.1f}",
            f"{s.redis_keys:,}",
        )
    return table


def run_month(
    bootstrap_servers: str,
    redis_url: str,
    log_dir: Path,
    *,
    days: int,
    parcels_per_hour: int,
    rate: float,
    retention: dict[str, str],
    state_cache_size: int = 2000,
    sample_days: tuple[int, ...] = (1, 10, 20, 30),
) -> list[DaySample]:
    """Orders of ``days`` simulated days (one simulator batch per simulated hour) through worker and
    projector with retention on; a DaySample at each of ``sample_days`` (once the worker and the
    projector caught up with what was sent)."""
    import redis

    topics = TopicNames(unique("soak"))
    create_topics(bootstrap_servers, topics.prefix, PARTITIONS)
    launcher = StageLauncher(bootstrap_servers, log_dir)
    client = redis.Redis.from_url(redis_url)
    samples: list[DaySample] = []
    try:
        worker = launcher.worker(topics, store="rocksdb", state_cache_size=str(state_cache_size), **retention)
        projector = launcher.projector(topics, redis_url, topics.prefix)
        projector_group = next(arg for arg in projector.command if arg.startswith("projector-"))
        publisher = Publisher(bootstrap_servers, topics)
        records = traffic(parcels_per_hour)
        sent = 0
        started = time.monotonic()
        for hour in range(days * 24):
            for record in next(records):
                (publisher.publish_scan if record.kind == "scan" else publisher.publish_manifest)(record.value)
                sent += 1
                if sent % 500 == 0:
                    publisher.poll(0)
                    while sent > (time.monotonic() - started) * rate:
                        time.sleep(0.01)  # pacing the producer at --rate
            day = (hour + 1) // 24
            if (hour + 1) % 24 == 0 and day in sample_days:
                if not publisher.flush().ok:
                    raise StackError("the broker did not acknowledge every record")
                deadline = time.monotonic() + 600
                while time.monotonic() < deadline and (
                    group_lag(bootstrap_servers, f"{topics.prefix}-worker", topics.scans)
                    or group_lag(bootstrap_servers, projector_group, topics.parcel_state)
                ):
                    time.sleep(1)  # polling the lag with a deadline
                for process in (worker, projector):
                    if not process.alive:
                        raise StackError(f"{process.name} exited: {process.log_tail()}")
                redis_keys = sum(1 for _ in client.scan_iter(match=f"{topics.prefix}:*", count=1000))
                samples.append(
                    DaySample(
                        day,
                        (hour + 1) * parcels_per_hour,
                        worker.rss_bytes() / MB,
                        dir_bytes(log_dir / "worker-data") / MB,
                        table_keys(bootstrap_servers, f"{topics.prefix}-worker-parcels-changelog"),
                        table_keys(bootstrap_servers, f"{topics.prefix}-worker-units-changelog"),
                        client.info("memory")["used_memory"] / MB,
                        redis_keys,
                    )
                )
                console.print(month_table(samples))
        return samples
    finally:
        launcher.stop_all()
        keys = list(client.scan_iter(match=f"{topics.prefix}:*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
        client.close()


def traffic(rate_parcels_per_batch: int) -> Iterator[list]:
    """Endless simulator batches (clean traffic: every record is a new scan or manifest)."""
    batch = 0
    while True:
        sim = simulate(
            SimulationConfig(
                seed=1 + batch // 1000,
                batch=batch % 1000,
                parcels=rate_parcels_per_batch,
                start_ms=1_767_225_600_000 + batch * 3_600_000,
                anomalies=AnomalyRates.none(),
            )
        )
        yield sim.records
        batch += 1


def run_soak(
    bootstrap_servers: str,
    redis_url: str,
    log_dir: Path,
    *,
    seconds: float,
    rate: float,
    sample_every: float = 5.0,
    max_rss_growth_mb: float = 100.0,
    drain_seconds: float = 60.0,
    store: str = "rocksdb",
    state_cache_size: int = 2000,
) -> SoakResult:
    """Run the soak and return its samples and problems (empty when it passed). The worker keeps its
    tables in ``store``: with ``memory`` every parcel's state stays in RAM, so its memory grows with
    the parcels it has seen by design; ``rocksdb`` (production) bounds it."""
    topics = TopicNames(unique("soak"))
    create_topics(bootstrap_servers, topics.prefix, PARTITIONS)
    launcher = StageLauncher(bootstrap_servers, log_dir)
    result = SoakResult()
    redis_prefix = topics.prefix
    try:
        worker = launcher.worker(topics, store=store, state_cache_size=str(state_cache_size))
        projector = launcher.projector(topics, redis_url, redis_prefix)
        projector_group = next(arg for arg in projector.command if arg.startswith("projector-"))
        processes: dict[str, tuple[StageProcess, str, str]] = {
            "worker": (worker, f"{topics.prefix}-worker", topics.scans),
            "projector": (projector, projector_group, topics.parcel_state),
        }
        publisher = Publisher(bootstrap_servers, topics)
        records = traffic(50)
        pending: list = []
        started = time.monotonic()
        next_sample = started
        while (elapsed := time.monotonic() - started) < seconds:
            due = int(elapsed * rate) - result.published
            while due > 0:
                if not pending:
                    pending = list(next(records))
                record = pending.pop(0)
                (publisher.publish_scan if record.kind == "scan" else publisher.publish_manifest)(record.value)
                result.published += 1
                due -= 1
            publisher.poll(0.02)
            if time.monotonic() >= next_sample:
                result.samples.append(_sample(bootstrap_servers, processes, elapsed, result.published))
                next_sample += sample_every
            for name, (process, _group, _topic) in processes.items():
                if not process.alive:
                    result.problems.append(f"{name} exited ({process.process.returncode})")
                    return result
        if not publisher.flush().ok:
            result.problems.append("the broker did not acknowledge every record")
        drain_started = time.monotonic()
        while time.monotonic() - drain_started < drain_seconds:
            sample = _sample(bootstrap_servers, processes, time.monotonic() - started, result.published)
            if not any(sample.lag.values()):
                result.samples.append(sample)
                result.drained_after_s = time.monotonic() - drain_started
                break
            time.sleep(1)  # polling the lag with a deadline
        else:
            result.samples.append(sample)
            result.problems.append(f"lag did not drain within {drain_seconds:.0f} s: {sample.lag}")
        warm = [s for s in result.samples if s.elapsed_s >= seconds / 4]
        for name in processes:
            if len(warm) >= 2:
                growth = warm[-1].rss_mb[name] - warm[0].rss_mb[name]
                if growth > max_rss_growth_mb:
                    result.problems.append(f"{name} memory grew {growth:.0f} MB after the warm-up")
        return result
    finally:
        launcher.stop_all()


def _sample(
    bootstrap_servers: str, processes: dict[str, tuple[StageProcess, str, str]], elapsed: float, published: int
) -> Sample:
    return Sample(
        elapsed,
        published,
        {name: process.rss_bytes() / MB for name, (process, _g, _t) in processes.items()},
        {name: group_lag(bootstrap_servers, group, topic) for name, (_p, group, topic) in processes.items()},
    )


def main(
    minutes: float = typer.Option(5.0, min=0.1, help="How long to send traffic."),
    rate: float = typer.Option(200.0, min=1, help="Records (scans and manifests) per second."),
    sample_every: float = typer.Option(5.0, min=1, help="Seconds between two samples."),
    max_rss_growth_mb: float = typer.Option(100.0, help="Allowed memory growth per process after the warm-up."),
    drain_seconds: float = typer.Option(60.0, help="Seconds the lag may take to drain after the traffic stops."),
    store: str = typer.Option(
        "rocksdb", help="The worker's table store: rocksdb (production, bounded memory) or memory (all state in RAM)."
    ),
    state_cache_size: int = typer.Option(2000, min=0, help="The worker's decoded-state cache (parcels and units)."),
    simulated_days: int = typer.Option(0, min=0, help="A month in minutes: send this many simulated days of orders."),
    parcels_per_hour: int = typer.Option(6, min=1, help="With --simulated-days: parcels ordered per simulated hour."),
    retention_days: float = typer.Option(5.0, help="With --simulated-days: the worker's PARCELSTREAM_RETENTION_DAYS."),
    expire_days: float = typer.Option(10.0, help="With --simulated-days: the worker's PARCELSTREAM_EXPIRE_DAYS."),
    unit_retention_days: float = typer.Option(3.0, help="With --simulated-days: PARCELSTREAM_UNIT_RETENTION_DAYS."),
) -> None:
    """Sustained simulator traffic through worker and projector; prints memory and lag over time."""
    redis_url = os.environ.get("PARCELSTREAM_REDIS_URL", "redis://127.0.0.1:6379/0")
    external = os.environ.get("PARCELSTREAM_BOOTSTRAP_SERVERS")
    try:
        check_redis(redis_url)
        with contextlib.ExitStack() as stack:
            if external:
                bootstrap_servers = external
            else:
                broker = stack.enter_context(EmbeddedBroker())
                bootstrap_servers = broker.bootstrap_servers
            log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="parcelstream-soak-")))
            if simulated_days:
                console.print(
                    f"soak: {simulated_days} simulated days, {parcels_per_hour} parcels/h, at {rate:g} records/s"
                )
                retention = {
                    "retention_days": str(retention_days),
                    "expire_days": str(expire_days),
                    "unit_retention_days": str(unit_retention_days),
                }
                month = run_month(
                    bootstrap_servers,
                    redis_url,
                    log_dir,
                    days=simulated_days,
                    parcels_per_hour=parcels_per_hour,
                    rate=rate,
                    retention=retention,
                    state_cache_size=state_cache_size,
                )
                console.print(month_table(month))
                raise typer.Exit(0)
            console.print(f"soak: {minutes:g} min at {rate:g} records/s on {bootstrap_servers}; logs in {log_dir}")
            result = run_soak(
                bootstrap_servers,
                redis_url,
                log_dir,
                seconds=minutes * 60,
                rate=rate,
                sample_every=sample_every,
                max_rss_growth_mb=max_rss_growth_mb,
                drain_seconds=drain_seconds,
                store=store,
                state_cache_size=state_cache_size,
            )
    except StackError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    console.print(result.table())
    drained = f"{result.drained_after_s:.0f} s" if result.drained_after_s is not None else "not drained"
    console.print(f"{result.published:,} records published; lag drained after {drained}")
    for problem in result.problems:
        console.print(f"[red]FAIL:[/red] {problem}")
    raise typer.Exit(0 if result.ok else 1)


if __name__ == "__main__":
    typer.run(main)
