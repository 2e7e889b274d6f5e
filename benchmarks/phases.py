"""``python -m benchmarks.phases``: where an event's latency goes inside one worker, at fixed offered loads.

``run`` starts an embedded broker and one worker with probes (``worker``, below), offers each
``--rate`` (records/s, event time = now, as the ``latency`` contender does) and prints, next to the
event → ParcelState percentiles the load generator measured, the share of each phase of a batch:

- ``to_worker``: the record's timestamp (its producer's clock, ~ its event time) → Faust's consumer
  took it from aiokafka's fetch buffer (producer linger, broker, the fetch's wait on the broker,
  the event loop busy with a batch);
- ``stream``: → the agent's stream took it from Faust's queue (behind the batch in progress);
- ``filling``: → its batch was handed to the agent (``take_events``: the batch timeout);
- ``core``: the batch's processing (``Batch.outputs``); ``writes``: its table writes;
- ``changelog``: waiting for the broker's acknowledgement of the batch's changelog records;
- ``publish``: sending the outputs and waiting for their acknowledgement;
- ``total``: the record's timestamp → its batch's outputs acknowledged (the load generator's
  figure adds the read of the ParcelState).

    python -m benchmarks.phases run --rate 375 --rate 750 --env PARCELSTREAM_BATCH_TIMEOUT=0.1

Also printed: the worker's CPU per offered record, batch sizes and cycles, the mean of each phase
over the slowest 1 % of records, and the commits, garbage collections, SLA timer sweeps and fetch
round trips of the window with their durations.

The probes wrap functions of Faust, aiokafka and the worker in the worker's process only.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

PHASES_FILE_ENV = "PARCELSTREAM_PHASES_FILE"
#: The phases of a batch, in order, as (name, start mark, end mark) of the probes' marks.
PHASES = (
    ("stream", "fetched", "time_in"),
    ("filling", "time_in", "yielded"),
    ("core", "yielded", "outputs"),
    ("writes", "outputs", "acks_started"),
    ("changelog", "acks_started", "acked"),
    ("publish", "acked", "published"),
)

cli = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)


# -- the probes, in the worker's process ---------------------------------------------------------


class Probes:
    """Marks the phases of the batch in progress and writes one JSON line per batch and per event
    of interest (commit, gc, timer sweep, fetch) to ``path``."""

    def __init__(self, path: str) -> None:
        # Line-buffered: the worker is stopped by a signal, and lines still in a buffer would be lost.
        self.out: TextIO = open(path, "w", buffering=1)  # noqa: SIM115  # open for the process's life
        self.batch: dict[str, Any] | None = None
        self._gc_started = 0.0

    def emit(self, record: dict[str, Any]) -> None:
        self.out.write(json.dumps(record, separators=(",", ":")) + "\n")

    def mark(self, name: str) -> None:
        if self.batch is not None:
            self.batch.setdefault(name, time.time())

    def timed(self, kind: str, function: Callable[..., Any]) -> Callable[..., Any]:
        """``function`` (a coroutine function) with its start and end emitted as ``kind``."""

        @functools.wraps(function)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.time()
            try:
                return await function(*args, **kwargs)
            finally:
                self.emit({"kind": kind, "start": started, "end": time.time()})

        return wrapper

    def on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.time()
        else:
            self.emit({"kind": "gc", "generation": info["generation"], "start": self._gc_started, "end": time.time()})

    def install(self) -> None:
        self._stamp_messages()
        self._mark_batches()
        self._time_background_work()

    def _stamp_messages(self) -> None:
        """Message has slots for the monitor's times only: ``time_out`` (unused by LeanMonitor) holds
        when the consumer took the record from aiokafka, ``time_in`` when the agent's stream took it."""
        from faust.transport.drivers import aiokafka as faust_aiokafka

        from streams.worker.app import LeanMonitor

        to_message = faust_aiokafka.Consumer._to_message

        def stamped_to_message(consumer: Any, tp: Any, record: Any) -> Any:
            message = to_message(consumer, tp, record)
            message.time_out = time.time()
            return message

        def on_message_in(monitor: Any, tp: Any, offset: int, message: Any) -> None:
            message.time_in = time.time()

        faust_aiokafka.Consumer._to_message = stamped_to_message  # type: ignore[method-assign]
        LeanMonitor.on_message_in = on_message_in  # type: ignore[method-assign]

    def _mark_batches(self) -> None:
        """A batch's marks: handed to the agent, outputs computed, changelog acks awaited (first
        and last), outputs published, agent done."""
        import faust

        from streams.worker import agents, outputs, processor

        probes = self
        take_events = faust.Stream.take_events

        async def probed_take_events(stream: Any, max_: int, within: float) -> AsyncIterator[Any]:
            async for events in take_events(stream, max_, within):
                messages = [event.message for event in events]
                probes.batch = {
                    "kind": "batch",
                    "yielded": time.time(),
                    "timestamp": [message.timestamp for message in messages],
                    "fetched": [message.time_out for message in messages],
                    "time_in": [message.time_in for message in messages],
                }
                yield events
                batch, probes.batch = probes.batch, None
                batch["done"] = time.time()
                probes.emit(batch)

        faust.Stream.take_events = probed_take_events

        outputs_of_batch = processor.Batch.outputs

        def marked_outputs(batch: Any) -> Any:
            result = outputs_of_batch(batch)
            probes.mark("outputs")
            return result

        processor.Batch.outputs = marked_outputs  # type: ignore[method-assign]

        # The batch's wait for every changelog acknowledgement (librdkafka's flush, or the futures of
        # Faust's buffered sends with PARCELSTREAM_OUTPUT_PRODUCER=faust).
        changelog_acked = agents.StreamWorker._changelog_acked

        async def probed_changelog_acked(worker: Any) -> None:
            probes.mark("acks_started")
            await changelog_acked(worker)
            probes.mark("acked")

        agents.StreamWorker._changelog_acked = probed_changelog_acked  # type: ignore[method-assign]

        for publisher in (outputs.LibrdkafkaPublisher, outputs.FaustPublisher):

            async def probed_publish(self: Any, outputs_: Sequence[Any], publish: Any = publisher.publish) -> None:
                await publish(self, outputs_)
                probes.mark("published")

            publisher.publish = probed_publish  # type: ignore[method-assign]

    def _time_background_work(self) -> None:
        from aiokafka.consumer.fetcher import Fetcher
        from faust.transport import consumer as faust_consumer

        from streams.worker import agents

        faust_consumer.Consumer.force_commit = self.timed("commit", faust_consumer.Consumer.force_commit)  # type: ignore[method-assign]
        agents.StreamWorker.sla_timer = self.timed("timer", agents.StreamWorker.sla_timer)  # type: ignore[method-assign]
        Fetcher._proc_fetch_request = self.timed("fetch", Fetcher._proc_fetch_request)  # type: ignore[method-assign]
        gc.callbacks.append(self.on_gc)


@cli.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def worker(ctx: typer.Context) -> None:
    """``parcelstream worker`` (the same arguments) with the probes, writing to $PARCELSTREAM_PHASES_FILE."""
    Probes(os.environ[PHASES_FILE_ENV]).install()
    from streams.cli import app as streams_cli

    streams_cli(ctx.args, prog_name="parcelstream worker")


# -- the driver ----------------------------------------------------------------------------------


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    last = len(ordered) - 1
    return {
        "p50": ordered[round(0.50 * last)],
        "p90": ordered[round(0.90 * last)],
        "p99": ordered[round(0.99 * last)],
        "max": ordered[-1],
        "mean": statistics.fmean(ordered),
    }


def analyse(records: list[dict[str, Any]], start: float, end: float) -> dict[str, Any]:
    """Per-event phase durations (ms) of the batches handed to the agent in [start, end), and the
    commits, collections, timer sweeps and fetches of that window."""
    batches = [r for r in records if r["kind"] == "batch" and start <= r["yielded"] < end and "published" in r]
    phases: dict[str, list[float]] = {name: [] for name in ("to_worker", *(p[0] for p in PHASES), "total")}
    tail_rows: list[dict[str, float]] = []
    for batch in batches:
        for timestamp, fetched, time_in in zip(batch["timestamp"], batch["fetched"], batch["time_in"], strict=True):
            marks = {**batch, "fetched": fetched, "time_in": time_in}
            if any(marks.get(mark) is None for _, begin, finish in PHASES for mark in (begin, finish)):
                continue  # a batch cut short (stopping)
            row = {"to_worker": (fetched - timestamp) * 1000}
            for name, begin, finish in PHASES:
                row[name] = (marks[finish] - marks[begin]) * 1000
            row["total"] = (batch["published"] - timestamp) * 1000
            tail_rows.append(row)
            for name, value in row.items():
                phases[name].append(value)
    # What the slowest 1 % of events spent their time on (mean per phase).
    tail_rows.sort(key=lambda row: row["total"])
    tail = tail_rows[int(0.99 * len(tail_rows)) :] if tail_rows else []
    window = end - start

    def events(kind: str) -> list[dict[str, Any]]:
        return [r for r in records if r["kind"] == kind and start <= r["start"] < end]

    def durations(kind: str) -> list[float]:
        return [(r["end"] - r["start"]) * 1000 for r in events(kind)]

    sizes = [len(batch["timestamp"]) for batch in batches]
    cycles = [(b["done"] - a["done"]) * 1000 for a, b in itertools.pairwise(batches)]
    return {
        "batches": len(batches),
        "batches_per_s": round(len(batches) / window, 2) if window > 0 else None,
        "batch_size": percentiles([float(size) for size in sizes]),
        "batch_cycle_ms": percentiles(cycles),
        "phases_ms": {name: percentiles(values) for name, values in phases.items()},
        "slowest_1pct_mean_ms": {name: statistics.fmean(row[name] for row in tail) for name in phases} if tail else {},
        "commits_ms": percentiles(durations("commit")) | {"count": len(events("commit"))},
        "gc_ms": percentiles(durations("gc"))
        | {"count": len(events("gc")), "gen2": sum(1 for r in events("gc") if r["generation"] == 2)},
        "timer_ms": percentiles(durations("timer")) | {"count": len(events("timer"))},
        "fetch_ms": percentiles(durations("fetch")) | {"count": len(events("fetch"))},
    }


def read_records(path: Path) -> list[dict[str, Any]]:
    """The probes' lines; a line cut short by the worker's end, or with foreign bytes before it
    (seen once: a few bytes of a Kafka record, a descriptor reused inside the worker), is skipped."""
    records = []
    text = path.read_bytes().decode(errors="replace") if path.exists() else ""
    for line in text.splitlines():
        start = line.find('{"kind"')
        if start < 0:
            continue
        with contextlib.suppress(ValueError):
            records.append(json.loads(line[start:]))
    return records


def print_report(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        latency, found = row["latency"], row["phases"]
        print(
            f"\n== {row['rate']:g} records/s: event → ParcelState p50 {latency['p50_ms']:.0f} ms, "
            f"p95 {latency['p95_ms']:.0f}, p99 {latency['p99_ms']:.0f} ({latency['states']} states; p99 of the "
            f"{latency['fanout_states']} by fan-out {latency['fanout_p99_ms']:.0f}, "
            f"of the others {latency['direct_p99_ms']:.0f}); "
            f"worker CPU {row['worker_cpu_ms_per_record']:.2f} ms a record\n   {found['batches']} batches "
            f"({found['batches_per_s']}/s), size p50 {found['batch_size'].get('p50', 0):.0f} "
            f"max {found['batch_size'].get('max', 0):.0f}, cycle p50 {found['batch_cycle_ms'].get('p50', 0):.0f} ms"
        )
        print(f"{'phase (ms)':<12}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>8}{'mean':>8}{'slowest 1%':>12}")
        for name, stats in found["phases_ms"].items():
            if stats:
                tail = found["slowest_1pct_mean_ms"].get(name, float("nan"))
                print(
                    f"{name:<12}{stats['p50']:>8.1f}{stats['p90']:>8.1f}{stats['p99']:>8.1f}"
                    f"{stats['max']:>8.1f}{stats['mean']:>8.1f}{tail:>12.1f}"
                )
        for kind in ("commits_ms", "gc_ms", "timer_ms", "fetch_ms"):
            stats = found[kind]
            if stats.get("count"):
                extra = f", gen2 {stats['gen2']}" if kind == "gc_ms" else ""
                print(
                    f"{kind[:-3]:<8} {stats['count']:>5} × p50 {stats['p50']:.1f} ms, p99 {stats['p99']:.1f}, "
                    f"max {stats['max']:.1f}{extra}"
                )


@cli.command()
def run(
    rate: Annotated[
        list[float] | None,
        typer.Option(
            help="Offered records/s, one phase each (repeat the flag; default: 375 and 750, 25 and 50 % of ~1,500)."
        ),
    ] = None,
    seconds: Annotated[float, typer.Option(help="Seconds of offered load per rate.")] = 10,
    scans: Annotated[int, typer.Option(help="Scans in the simulated dataset the records come from.")] = 30_000,
    seed: Annotated[int, typer.Option(help="Simulator seed.")] = 7,
    partitions: Annotated[int, typer.Option(help="Partitions of every topic.")] = 4,
    env: Annotated[
        list[str] | None,
        typer.Option(help="NAME=VALUE in the worker's environment (repeat the flag)."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="JSON file of the figures; the probes' lines go next to it.")
    ] = None,
) -> None:
    """One probed worker at fixed offered loads: latency percentiles and where they go."""
    from benchmarks.data import build_dataset
    from benchmarks.latency import LoadRun
    from benchmarks.measure import cpu_seconds
    from benchmarks.run import stop_processes
    from deploy.embedded import EmbeddedBroker, create_topics
    from schemas.topics import TopicNames

    rates = rate or [375.0, 750.0]
    if any("=" not in item for item in env or []):
        raise typer.BadParameter("--env takes NAME=VALUE")
    worker_env = dict(item.split("=", 1) for item in env or [])
    workdir = Path(tempfile.mkdtemp(prefix="parcelstream-phases-"))
    phases_file = (output.with_suffix(".jsonl") if output else workdir / "phases.jsonl").resolve()
    dataset = build_dataset(scans, seed)
    rows: list[dict[str, Any]] = []
    with EmbeddedBroker() as broker:
        topics = TopicNames(f"phases-{uuid.uuid4().hex[:6]}")
        create_topics(broker.bootstrap_servers, topics.prefix, partitions)
        command = [
            *(sys.executable, "-m", "benchmarks.phases", "worker"),
            *("--bootstrap-servers", broker.bootstrap_servers, "--topic-prefix", topics.prefix),
            *("--partitions", str(partitions), "--log-level", "warning", "--data-dir", str(workdir / "data")),
        ]
        log_path = workdir / "worker.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **worker_env, PHASES_FILE_ENV: str(phases_file)},
            )
        load = LoadRun(broker.bootstrap_servers, topics, partitions)
        try:
            records = iter(dataset.values)
            first = next(record for record in records if record[0] == "scan")
            deadline = time.monotonic() + 90
            while not load.warm_up(first, timeout=5):  # the same scan again: a duplicate the worker drops
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the worker published no state; see {log_path}")
            for offered in rates:
                started, cpu_before = time.time(), cpu_seconds(process.pid)
                result = load.run(records, offered, seconds)
                cpu_ms_per_record = (cpu_seconds(process.pid) - cpu_before) * 1000 / max(1, result.published)
                rows.append(
                    {
                        "rate": offered,
                        "start": started,
                        "end": time.time(),
                        "latency": vars(result),
                        "worker_cpu_ms_per_record": round(cpu_ms_per_record, 3),
                    }
                )
        finally:
            load.close()
            stop_processes([process])
    found = read_records(phases_file)
    for row in rows:
        row["phases"] = analyse(found, row["start"], row["end"])
    print_report(rows)
    report = {"env": worker_env, "seconds": seconds, "scans": scans, "phases_file": str(phases_file), "rows": rows}
    if output:
        output.write_text(json.dumps(report, indent=2))
        print(f"\nsaved {output} and {phases_file}")


if __name__ == "__main__":
    cli(prog_name="python -m benchmarks.phases")
