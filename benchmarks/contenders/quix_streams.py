"""The worker's core on Quix Streams 3.28 (stateful: RocksDB + changelog topics).

Runs in its own virtualenv (benchmarks/.venv-quix: Quix pins its own confluent-kafka; the run's
``QUIX_REQUIREMENTS`` add what the core imports), with the repository root on sys.path, so it runs
the worker's own code: ``streams.worker.processor.Processor`` built from ``WorkerSettings`` as
``streams.worker.agents.StreamWorker`` builds it (SLA rules, bounded event clock, guards, learned
estimates, retention, warm cache of decoded parcels), the same GC tuning, and per message what the
worker does per batch: ``Batch.add`` (decode, core, Avro outputs), ``Batch.outputs`` (the
ParcelState), ``Batch.write_state`` (the stored parcel or unit: ``encode_parcel``), the metrics,
the warm cache and the next due time (written to the key's state when it moved, as the worker's
``timers`` table). Quix's state is per message key, so each message is a batch of one (one
ParcelState per changed parcel per message; the worker coalesces them per batch).

Not done here, because Quix gives the same guarantee itself: the worker's ``outbox``. Quix's
checkpoint flushes the outputs before it commits offsets, and its recovery ignores changelog
records past the committed offset, so a crash replays the inputs from the state they were
processed from and the core produces the same outputs again. Nor the SLA timer: Quix has no timers.

The scans, manifests and fan-out topics are concatenated into one StreamingDataFrame, so a key's
records share one state store, as in the worker. Done when every input record was consumed and
nothing was processed for ``IDLE_SECONDS``.
"""

from __future__ import annotations

import gc
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
from schemas.erasure import erased_key  # noqa: E402
from schemas.topics import TopicNames  # noqa: E402
from streams.settings import WorkerSettings  # noqa: E402
from streams.worker.deadlines import DeadlineHeap  # noqa: E402
from streams.worker.processor import (  # noqa: E402
    ERASED_PREFIX,
    UNIT_TIMER_PREFIX,
    Headers,
    Processor,
    SourceMessage,
    WarmCache,
)

IDLE_SECONDS = 3.0
#: streams.worker.app.GC_THRESHOLDS (that module imports Faust, which this virtualenv has not).
GC_THRESHOLDS = (50_000, 20, 100)
#: State name of a parcel's erasure marker, under the parcel's key.
ERASED_STATE = "erased"
#: An output as Quix produces it: (topic, key, value or None, headers).
QuixOutput = tuple[str, bytes, bytes | None, Headers]


class KeyState:
    """One of the Processor's tables (``name``: parcels, units, timers) over Quix's state of the
    current message's key: the core reads and writes the key of the message it processes, and
    looks up a new parcel's erasure marker (``erased:<hash of its number>``, its own state name
    here; the worker keeps it under the hash in the parcel's partition)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.state: State | None = None
        self.key = ""

    def bind(self, state: State, key: str) -> None:
        self.state, self.key = state, key

    def _located(self, key: str) -> tuple[State, str]:
        """The state and the name under which ``key`` lives; KeyError for another message's key."""
        if self.state is not None:
            if key == self.key:
                return self.state, self.name
            if key.startswith(ERASED_PREFIX) and key == erased_key(self.key):
                return self.state, ERASED_STATE
        raise KeyError(f"{self.name}: {key!r} is not the current message's key {self.key!r}")

    def get(self, key: str, default: bytes | None = None) -> bytes | None:
        state, name = self._located(key)
        return state.get_bytes(name, default)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        state, name = self._located(key)
        return state.exists(name)

    def __setitem__(self, key: str, value: bytes) -> None:
        state, name = self._located(key)
        state.set_bytes(name, value)

    def __delitem__(self, key: str) -> None:
        state, name = self._located(key)
        state.delete(name)


class OutputValue(Serializer):
    """Outputs travel as ``QuixOutput`` tuples; the topic gets the Avro bytes (None: a tombstone)."""

    def __call__(self, value: QuixOutput, ctx: Any) -> bytes | None:
        return value[2]


def quix_headers(headers: Any) -> Headers:
    """Quix's headers (a list of (name, bytes) pairs, or None) as the Processor takes them."""
    return tuple((str(name), bytes(value or b"")) for name, value in headers or ())


class WorkerCore:
    """Per message, what the worker does per batch (see the module docstring)."""

    def __init__(self, settings: WorkerSettings, outputs: TopicNames) -> None:
        self.outputs = outputs
        self.processor = Processor.from_settings(settings, outputs)
        # One Quix process owns every partition in this run, so decoded parcels stay valid between messages.
        self.warm = WarmCache(settings.state_cache_size)
        self.deadlines = DeadlineHeap()
        self.parcels, self.units, self.timers = KeyState("parcels"), KeyState("units"), KeyState("timers")
        self.window = Window()
        self.inputs = 0
        self.state_updates = 0

    def process(self, value: bytes, key: bytes, _timestamp: int, headers: Any, state: State) -> list[QuixOutput]:
        self.window.start()
        context = message_context()
        if context.topic != self.outputs.scans_fanout:
            self.inputs += 1
        text_key = key.decode() if key else ""
        for table in (self.parcels, self.units, self.timers):
            table.bind(state, text_key)
        message = SourceMessage(context.topic, context.partition, context.offset, key, value, quix_headers(headers))
        batch = self.processor.batch(self.parcels, self.units, self.warm)
        batch.add(message, time.time_ns() // 1_000_000)
        produced = [(output.topic, output.key or b"", output.value, output.headers or ()) for output in batch.outputs()]
        batch.write_state(self.parcels, self.units)  # type: ignore[arg-type]
        batch.state.keep_warm()
        batch.count_metrics()
        for timer_key, due in batch.deadlines():
            if self.deadlines.due_of(timer_key) == due:
                continue
            self.deadlines.schedule(timer_key, due)
            subject = timer_key.removeprefix(UNIT_TIMER_PREFIX)
            if due is not None:
                self.timers[subject] = str(due).encode()
            elif subject in self.timers:
                del self.timers[subject]
        self.state_updates += sum(1 for output in produced if output[0] == self.outputs.parcel_state)
        self.window.mark()
        return produced


def main() -> None:
    args = arguments(__doc__ or "")
    inputs, outputs = TopicNames(args.input_prefix), TopicNames(args.output_prefix)
    settings = WorkerSettings(
        bootstrap_servers=args.bootstrap_servers, topic_prefix=args.output_prefix, partitions=args.partitions
    )
    app = Application(
        broker_address=args.bootstrap_servers,
        consumer_group=f"{args.output_prefix}-quix",
        auto_offset_reset="earliest",
        state_dir=tempfile.mkdtemp(prefix="quix-state-"),
        loglevel="WARNING",
        # The worker's commit interval and fetch wait (Tansu holds an empty fetch for all of it).
        commit_interval=settings.commit_interval,
        consumer_extra_config={
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            "fetch.wait.max.ms": round(settings.fetch_max_wait * 1000),
        },
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
    core = WorkerCore(settings, outputs)
    frames = [app.dataframe(topic) for topic in sources]
    merged = frames[0].concat(frames[1]).concat(frames[2])
    merged = merged.apply(core.process, stateful=True, expand=True, metadata=True)
    merged = merged.set_headers(lambda value, _key, _timestamp, _headers: list(value[3]))
    merged.to_topic(lambda value, _key, _timestamp, _headers: sinks[value[0]], key=lambda value: value[1])

    def stop_when_idle() -> None:
        window = core.window
        while True:
            time.sleep(0.5)  # polling the idle condition; Quix has no timers of its own
            if core.inputs >= args.inputs and window.started and time.perf_counter() - window.last >= IDLE_SECONDS:
                app.stop()
                return

    threading.Thread(target=stop_when_idle, daemon=True).start()
    gc.collect()  # as the worker (streams.worker.app.tune_gc): start-up heap frozen, thresholds for batches
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    app.run()
    write_result(args.result, core.window.result(core.inputs, core.state_updates))


if __name__ == "__main__":
    main()
