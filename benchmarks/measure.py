"""Measuring processes the harness did not write: CPU and peak RSS from /proc, and the worker's
outputs counted on its parcel-state topic."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14 and 15 of stat)


def peak_rss_bytes(pid: int) -> int:
    """The process's resident-set high-water mark (VmHWM)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@dataclass
class OutputCounter:
    """Counts the messages of one topic (all partitions, from the beginning) with their timestamps."""

    bootstrap_servers: str
    topic: str
    partitions: int
    count: int = 0
    first_timestamp_ms: int | None = None
    last_timestamp_ms: int = 0
    last_arrival: float = field(default_factory=time.monotonic)
    _consumer: Consumer | None = None

    def __post_init__(self) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap_servers,
                "group.id": f"bench-counter-{self.topic}",
                "enable.auto.commit": False,
                "log_level": 3,
            }
        )
        self._consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in range(self.partitions)])

    def poll(self, timeout: float = 0.5) -> int:
        """Read what arrived; returns how many new messages."""
        assert self._consumer is not None
        messages = self._consumer.consume(5000, timeout=timeout)
        new = 0
        for message in messages:
            if message.error():
                continue
            new += 1
            _kind, timestamp = message.timestamp()
            if self.first_timestamp_ms is None or timestamp < self.first_timestamp_ms:
                self.first_timestamp_ms = timestamp
            self.last_timestamp_ms = max(self.last_timestamp_ms, timestamp)
        if new:
            self.count += new
            self.last_arrival = time.monotonic()
        return new

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


def group_caught_up(bootstrap_servers: str, group: str, topics: list[str], partitions: int) -> bool:
    """Whether ``group`` committed the end of every partition of ``topics``."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap_servers, "group.id": group, "enable.auto.commit": False, "log_level": 0}
    )
    try:
        wanted = [TopicPartition(topic, p) for topic in topics for p in range(partitions)]
        committed = consumer.committed(wanted, timeout=10)
        for position in committed:
            _low, high = consumer.get_watermark_offsets(position, timeout=10, cached=False)
            if high > 0 and position.offset < high:
                return False
        return True
    except Exception:  # the group may be rebalancing: not caught up yet
        return False
    finally:
        consumer.close()


def latest_value_bytes(bootstrap_servers: str, topic: str, partitions: int, idle_s: float = 2.0) -> dict[bytes, int]:
    """Bytes of the latest value of each key of a (compacted) topic, read from the beginning until
    nothing more arrives for ``idle_s``; a tombstone drops its key."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"bench-latest-{topic}",
            "enable.auto.commit": False,
            "log_level": 3,
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    latest: dict[bytes, int] = {}
    quiet_since = time.monotonic()
    try:
        while time.monotonic() - quiet_since < idle_s:
            messages = consumer.consume(5000, timeout=0.5)
            for message in messages:
                if message.error() or message.key() is None:
                    continue
                value = message.value()
                if value is None:
                    latest.pop(message.key(), None)
                else:
                    latest[message.key()] = len(value)
            if messages:
                quiet_since = time.monotonic()
    finally:
        consumer.close()
    return latest
