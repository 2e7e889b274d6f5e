"""The same state machine on Quix Streams 3.28 (stateful: RocksDB + changelog topics).

Runs in its own virtualenv (benchmarks/.venv-quix: Quix pins its own confluent-kafka), with the
repository root on sys.path so it runs the worker's own pure core: ``streams.worker.processor.Processor``
(apply_scan, consolidation) against Quix's per-key state instead of Faust tables. The scans,
manifests and fan-out topics are concatenated into one StreamingDataFrame, so a key's records
share one state store, as in the worker. Done when every input record was consumed and nothing
was processed for ``IDLE_SECONDS``.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from quixstreams import Application, State, message_context  # noqa: E402
from quixstreams.models.serializers import Serializer  # noqa: E402

from benchmarks.contenders.common import Window, arguments, write_result  # noqa: E402
from schemas.topics import TopicNames  # noqa: E402
from streams.core.clock import EventClock  # noqa: E402
from streams.core.rules import SlaRules  # noqa: E402
from streams.worker.processor import Processor, SourceMessage  # noqa: E402

IDLE_SECONDS = 3.0


class StateTable:
    """The Processor's table interface over Quix's state of the current message's key."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.state: State | None = None

    def get(self, _key: str, default: Any = None) -> bytes | None:
        assert self.state is not None
        value = self.state.get(self.name)
        return default if value is None else value.encode()

    def __setitem__(self, _key: str, value: bytes) -> None:
        assert self.state is not None
        self.state.set(self.name, value.decode())  # JSON text: the store's serialiser takes str, not bytes


class OutputValue(Serializer):
    """Outputs travel as (topic, key, value) tuples; the topic gets the Avro bytes."""

    def __call__(self, value: tuple[str, bytes, bytes], ctx: Any) -> bytes:
        return value[2]


def main() -> None:
    args = arguments(__doc__ or "")
    inputs, outputs = TopicNames(args.input_prefix), TopicNames(args.output_prefix)
    app = Application(
        broker_address=args.bootstrap_servers,
        consumer_group=f"{args.output_prefix}-quix",
        auto_offset_reset="earliest",
        state_dir=tempfile.mkdtemp(prefix="quix-state-"),
        loglevel="WARNING",
        consumer_extra_config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000},
        producer_extra_config={"partitioner": "murmur2_random", "linger.ms": 5},
    )
    source_names = (inputs.scans, inputs.manifests, outputs.scans_fanout)
    sources = [app.topic(name, value_deserializer="bytes", key_deserializer="bytes") for name in source_names]
    sinks = {
        name: app.topic(name, value_serializer=OutputValue(), key_serializer="bytes")
        for name in (
            outputs.parcel_state,
            outputs.status_updates,
            outputs.sla_events,
            outputs.scans_fanout,
            outputs.dead_letters,
        )
    }
    processor = Processor(outputs, SlaRules(), EventClock(1.0))
    parcels, units = StateTable("parcel"), StateTable("unit")
    window = Window()
    counts = {"inputs": 0, "state_updates": 0}

    def process(
        value: bytes, key: bytes, _timestamp: int, _headers: Any, state: State
    ) -> list[tuple[str, bytes, bytes]]:
        window.start()
        context = message_context()
        if context.topic != outputs.scans_fanout:
            counts["inputs"] += 1
        parcels.state = units.state = state
        message = SourceMessage(context.topic, context.partition, context.offset, key, value)
        result = processor.handle(message, parcels, units, time.time_ns() // 1_000_000)
        produced = [(output.topic, output.key or b"", output.value) for output in result.outputs]
        result.write_state(parcels, units)  # type: ignore[arg-type]
        counts["state_updates"] += sum(1 for output in result.outputs if output.topic == outputs.parcel_state)
        window.mark()
        return produced

    frames = [app.dataframe(topic) for topic in sources]
    merged = frames[0].concat(frames[1]).concat(frames[2])
    merged = merged.apply(process, stateful=True, expand=True, metadata=True)
    merged.to_topic(lambda value, _key, _timestamp, _headers: sinks[value[0]], key=lambda value: value[1])

    def stop_when_idle() -> None:
        while True:
            time.sleep(0.5)  # polling the idle condition; Quix has no timers of its own
            if counts["inputs"] >= args.inputs and window.started and time.perf_counter() - window.last >= IDLE_SECONDS:
                app.stop()
                return

    threading.Thread(target=stop_when_idle, daemon=True).start()
    app.run()
    write_result(args.result, window.result(counts["inputs"], counts["state_updates"]))


if __name__ == "__main__":
    main()
