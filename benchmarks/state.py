"""Cost of one scan and size of the stored parcel as a parcel's history grows.

``python -m benchmarks.state`` builds parcels with 10, 30 and 100 history entries, then measures
one more scan of each through the worker's batch path without Kafka (``Processor.batch``: decode
the stored value, apply the scan, encode the table value and the ParcelState): *cold*, the parcel
read from its table, and *warm*, kept decoded between batches (``WarmCache``). A compact state
costs the same per scan whatever the length of the history (only bytes are copied). Prints a
table and writes JSON (default ``benchmarks/results/state-<timestamp>.json``).

``--recovery-parcels N`` (e.g. 100000) also stores N parcels (three scans each) and times what an
assignment costs: rebuilding the timer heap from the ``timers`` table's values (what the worker
does) against decoding every stored parcel to find its due time (what it did), and reports the
process's RSS holding them (the memory store's share).

``--core-scans N`` (e.g. 10000) runs the benchmark's dataset (``benchmarks.data.build_dataset``,
same seed) through the pure core as the worker drives it, without Kafka: batches of the worker's
size over dict tables (``Processor.batch``, warm cache, learned estimates on, GC tuned as the
worker's), outputs, table and outbox writes, estimate rows and due times of each batch, fan-out
copies fed back as inputs of the next batch. It prints the CPU µs per input (best of
``--core-repeats`` runs), the stored bytes per parcel and a digest of every output, so two
commits' runs (``git worktree`` of each) compare in cost and prove identical outputs.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from aiokafka.partitioner import murmur2

from benchmarks.data import Dataset, build_dataset
from schemas.codec import default_codec
from schemas.topics import TopicNames
from streams.core.clock import EventClock
from streams.core.estimates import EstimateConfig
from streams.core.rules import SlaRules
from streams.settings import WorkerSettings
from streams.worker.app import GC_THRESHOLDS
from streams.worker.deadlines import DeadlineHeap
from streams.worker.estimates import PartitionEstimates
from streams.worker.processor import Processor, SourceMessage, WarmCache

HOUR = 3_600_000
T0 = 1_767_225_600_000
#: The wall clock of the core benchmark's batches: fixed, as dead letters carry it and the digest must not move.
FIXED_WALL_MS = T0 + 400 * 24 * HOUR
CODES = ("HUB_SORTED", "HUB_MISSORTED")
LOCATION = {"code": "LGG-HUB-1", "kind": "facility", "country": "BE", "name": "Liège hub"}


def _scan(tracking_number: str, n: int) -> dict[str, Any]:
    return {
        "event_id": f"{tracking_number}-{n:04d}-5f0c2d1e-8a4b-4c3d-9e2f",
        "tracking_number": tracking_number,
        "handling_unit": None,
        "source": "warehouse",
        "code": CODES[n % 2],
        "raw_code": CODES[n % 2].lower(),
        "raw_format": "benchmark",
        "carrier": "CK",
        "event_time_ms": T0 + n * HOUR,
        "utc_offset_minutes": 60,
        "recorded_time_ms": T0 + n * HOUR,
        "location": LOCATION,
        "references": dict.fromkeys(("awb", "uld", "bag", "container", "flight_number", "train_id")),
        "reason": None,
        "shipment": None,
    }


def measure(history: int, parcels: int, *, warm: bool) -> dict[str, float]:
    """µs per scan (median of the per-parcel times) for parcels that already have ``history`` entries."""
    codec = default_codec()
    topics = TopicNames("bench")
    processor = Processor(topics, SlaRules(), EventClock(1.0), codec, max_scans=10_000)
    table: dict[str, bytes] = {}
    cache = WarmCache(parcels * 2) if warm else None
    numbers = [f"LB{index:09d}BE" for index in range(parcels)]
    offset = 0

    def message(number: str, n: int) -> SourceMessage:
        nonlocal offset
        offset += 1
        return SourceMessage(topics.scans, 0, offset, number.encode(), codec.encode("ScanEvent", _scan(number, n)))

    for n in range(history):  # build the histories, one batch per step
        batch = processor.batch(table, {}, cache)
        for number in numbers:
            batch.add(message(number, n), T0)
        batch.outputs()
        batch.write_state(table, {})
        batch.state.keep_warm()
    times = []
    for number in numbers:  # one scan more per parcel, each its own batch, timed
        source = message(number, history)
        started = time.perf_counter()
        batch = processor.batch(table, {}, cache)
        batch.add(source, T0)
        batch.outputs()
        batch.write_state(table, {})
        batch.state.keep_warm()
        times.append(time.perf_counter() - started)
    return {
        "us_per_scan": round(statistics.median(times) * 1e6, 1),
        "stored_bytes": round(statistics.mean(len(table[number]) for number in numbers), 1),
    }


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def measure_recovery(parcels: int) -> dict[str, float]:
    """Store ``parcels`` parcels of three scans, then time both ways of rebuilding the timer heap."""
    codec = default_codec()
    topics = TopicNames("bench")
    processor = Processor(topics, SlaRules(), EventClock(1.0), codec)
    table: dict[str, bytes] = {}
    timers: dict[str, bytes] = {}
    rss_before = rss_bytes()
    offset = 0
    numbers = [f"LR{index:09d}BE" for index in range(parcels)]
    for start in range(0, parcels, 1000):
        for n in range(3):
            batch = processor.batch(table, {})
            for number in numbers[start : start + 1000]:
                offset += 1
                value = codec.encode("ScanEvent", _scan(number, n))
                batch.add(SourceMessage(topics.scans, 0, offset, number.encode(), value), T0)
            batch.outputs()
            batch.write_state(table, {})
            for key, due in batch.deadlines():
                if due is not None:
                    timers[key] = str(due).encode()
    stored_rss = rss_bytes() - rss_before
    started = time.perf_counter()
    DeadlineHeap().rebuild((key, int(value)) for key, value in timers.items())
    from_timers = time.perf_counter() - started
    started = time.perf_counter()
    DeadlineHeap().rebuild((key, processor.deadline_of(value)) for key, value in table.items())
    decoding_all = time.perf_counter() - started
    return {
        "parcels": parcels,
        "rebuild_from_timers_s": round(from_timers, 3),
        "rebuild_decoding_every_parcel_s": round(decoding_all, 3),
        "stored_bytes_per_parcel": round(sum(map(len, table.values())) / parcels, 1),
        "timer_bytes_per_parcel": round(sum(len(k) + len(v) for k, v in timers.items()) / parcels, 1),
        "rss_growth_mb": round(stored_rss / 2**20, 1),
    }


def _core_inputs(dataset: Dataset, topics: TopicNames, partitions: int) -> list[SourceMessage]:
    inputs = []
    for offset, record in enumerate(dataset.records):
        topic = topics.scans if record.kind == "scan" else topics.manifests
        partition = (murmur2(record.key) & 0x7FFFFFFF) % partitions
        inputs.append(SourceMessage(topic, partition, offset, record.key, record.value))
    return inputs


def run_core(
    inputs: list[SourceMessage],
    partitions: int,
    batch_size: int,
    processor: Processor | None = None,
    wall_ms: int = FIXED_WALL_MS,
) -> dict[str, Any]:
    """One pass of ``inputs`` through the processor as the worker batches it; CPU seconds of the pass.
    Without ``processor``: the core's defaults on the topics ``bench`` (what ``--core-scans`` compares)."""
    if processor is None:
        processor = Processor(
            TopicNames("bench"),
            SlaRules(),
            EventClock(1.0, bounded=True),
            estimates=PartitionEstimates(EstimateConfig()),
        )
    topics = processor.topics
    assert processor.estimates is not None
    parcels: dict[str, bytes] = {}
    units: dict[str, bytes] = {}
    outbox: dict[str, bytes] = {}
    warm = WarmCache(WorkerSettings.model_fields["state_cache_size"].default)
    digest = hashlib.sha256()
    pending, fanout_offset, handled, state_updates = list(inputs), 0, 0, 0
    gc.collect()
    started = time.process_time()
    while pending:
        batch_inputs, pending = pending[:batch_size], pending[batch_size:]
        batch = processor.batch(parcels, units, warm)
        for message in batch_inputs:
            batch.add(message, wall_ms)
        handled += len(batch_inputs)
        outputs = batch.outputs()
        batch.write_state(parcels, units, outbox)
        for _partition, _key, _value in processor.estimates.changes():
            pass
        batch.state.keep_warm()
        batch.count_metrics()
        batch.deadlines()
        copies = []
        for output in outputs:
            digest.update(b"%s|%s|%s|" % (output.topic.encode(), output.key or b"-", output.value or b"-"))
            state_updates += output.topic == topics.parcel_state
            if output.topic == topics.scans_fanout:
                fanout_offset += 1
                partition = (murmur2(output.key or b"") & 0x7FFFFFFF) % partitions
                copies.append(
                    SourceMessage(
                        output.topic, partition, fanout_offset, output.key, output.value, output.headers or ()
                    )
                )
        pending = copies + pending  # the copies arrive while the next records are read
    cpu_s = time.process_time() - started
    stored = [len(value) for key, value in parcels.items() if not key.startswith("erased:")]
    return {
        "inputs": handled,
        "state_updates": state_updates,
        "cpu_s": cpu_s,
        "stored_bytes_per_parcel": sum(stored) / max(1, len(stored)),
        "outputs_sha256": digest.hexdigest(),
    }


@contextlib.contextmanager
def worker_gc() -> Iterator[None]:
    """The collector as the worker sets it (``streams.worker.app.tune_gc``), restored afterwards."""
    gc.collect()
    gc.freeze()  # as the worker: the start-up heap out of the collector's reach
    thresholds = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def measure_core(scans: int, seed: int, repeats: int, partitions: int = 4) -> dict[str, Any]:
    """CPU µs per input of the pure core over the benchmark's dataset (best of ``repeats``)."""
    dataset = build_dataset(scans, seed)
    inputs = _core_inputs(dataset, TopicNames("bench"), partitions)
    batch_size = WorkerSettings.model_fields["batch_size"].default
    with worker_gc():
        runs = [run_core(inputs, partitions, batch_size) for _ in range(repeats)]
    if len({run["outputs_sha256"] for run in runs}) != 1:
        raise RuntimeError("the core's outputs differ between runs of the same inputs")
    best = min(runs, key=lambda run: run["cpu_s"])
    return {
        "scans": scans,
        "seed": seed,
        "inputs": best["inputs"],
        "cpu_us_per_input": round(best["cpu_s"] / best["inputs"] * 1e6, 1),
        "cpu_us_per_input_runs": [round(run["cpu_s"] / run["inputs"] * 1e6, 1) for run in runs],
        "stored_bytes_per_parcel": round(best["stored_bytes_per_parcel"], 1),
        "outputs_sha256": best["outputs_sha256"],
    }


def main(
    parcels: Annotated[int, typer.Option(help="Parcels per history length.")] = 300,
    recovery_parcels: Annotated[int, typer.Option(help="Also time a timer rebuild over this many parcels.")] = 0,
    core_scans: Annotated[
        int, typer.Option(help="Only time the core over this many scans of the benchmark's dataset.")
    ] = 0,
    core_repeats: Annotated[int, typer.Option(help="Passes of the core over the dataset; the best is kept.")] = 3,
    seed: Annotated[int, typer.Option(help="Simulator seed of the core's dataset.")] = 7,
    output: Annotated[Path | None, typer.Option(help="JSON result file.")] = None,
) -> None:
    if core_scans:
        core = measure_core(core_scans, seed, core_repeats)
        print(json.dumps(core, indent=2))
        if output is not None:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(json.dumps(core, indent=2))
        return
    rows = []
    for history in (10, 30, 100):
        cold, warm = measure(history, parcels, warm=False), measure(history, parcels, warm=True)
        rows.append(
            {
                "history_entries": history,
                "cold_us_per_scan": cold["us_per_scan"],
                "warm_us_per_scan": warm["us_per_scan"],
                "stored_bytes": cold["stored_bytes"],
            }
        )
    print(f"{'history entries':>16} {'cold µs/scan':>13} {'warm µs/scan':>13} {'stored bytes':>13}")
    for row in rows:
        print(
            f"{row['history_entries']:>16} {row['cold_us_per_scan']:>13.1f} {row['warm_us_per_scan']:>13.1f}"
            f" {row['stored_bytes']:>13.0f}"
        )
    report: dict[str, Any] = {"parcels": parcels, "rows": rows}
    if recovery_parcels:
        report["recovery"] = measure_recovery(recovery_parcels)
        print(json.dumps(report["recovery"], indent=2))
    path = output or Path("benchmarks/results") / f"state-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    print(f"saved {path}")


if __name__ == "__main__":
    typer.run(main)
