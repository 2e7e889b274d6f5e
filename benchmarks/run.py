"""``python -m benchmarks.run``: how fast is the pipeline, and how close to what Python + Kafka allow?

One embedded Tansu broker, one simulated dataset (fixed seed), each contender in its own process
on its own copy of the data; prints a table of absolute figures and ratios and saves JSON under
benchmarks/results/. See benchmarks/README.md.
"""

from __future__ import annotations

import contextlib
import json
import operator
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Final

import typer
from rich.console import Console
from rich.table import Table

from benchmarks.data import Dataset, build_dataset, preload
from benchmarks.latency import LoadRun
from benchmarks.measure import OutputCounter, cpu_seconds, group_caught_up, latest_value_bytes, peak_rss_bytes
from deploy.embedded import EmbeddedBroker, StackError, create_topics
from schemas.topics import TopicNames
from streams.settings import WorkerSettings

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
QUIX_VENV = REPO_ROOT / "benchmarks" / ".venv-quix"
#: Quix Streams and what the worker's core imports (streams.worker.processor), at the main venv's versions.
QUIX_REQUIREMENTS = (
    "quixstreams==3.28.1",
    "fastavro==1.13.1",
    "orjson==3.13.0",
    "prometheus-client==0.26.0",
    "fastdigest==0.12.0",
    "aiokafka==0.14.0",
    "zstandard==0.25.0",
)
#: In run order: the limits (the raw loops; the worker's core alone, no Kafka) and the worker first,
#: the slower references after.
THROUGHPUT = (
    "raw_confluent",
    "raw_aiokafka",
    "core_only",
    "parcelstream_1w",
    "parcelstream_2w",
    "quix_streams",
    "naive_faust",
)
CONTENDERS = (*THROUGHPUT, "latency")
LOAD_FRACTIONS = (0.25, 0.5, 0.8)
#: The latency baseline: the worker's consumer with the fetch long-poll Faust hard-codes (1.5 s),
#: measured in the same run as the worker's own setting (``WorkerSettings.fetch_max_wait``).
FAUST_FETCH_MAX_WAIT = 1.5
RETAIN_ALL: Final = {"PARCELSTREAM_RETENTION_DAYS": "3650", "PARCELSTREAM_EXPIRE_DAYS": "3650"}
#: Runs of one worker saved when issue 15 was filed (main, after issue 13's compact state): its peak
#: RSS target is "not higher than then" on the same dataset.
RSS_BASELINES = (RESULTS_DIR / "2026-11-30-after-state-30k.json",)
#: The worker has processed everything once its group committed the inputs and no state came for this long.
IDLE_SECONDS = 3.0

console = Console(stderr=True)
report_console = Console(width=150)


@dataclass
class Outcome:
    name: str
    ok: bool = False
    error: str = ""
    scans: int = 0
    inputs: int = 0
    state_updates: int = 0
    elapsed_s: float = 0.0
    cpu_seconds: float = 0.0
    peak_rss_bytes: int = 0
    processes: int = 1
    #: Mean bytes of a parcel's table value after the run (the worker's parcels changelog).
    state_bytes_per_parcel: float | None = None
    ratios: dict[str, float | None] = field(default_factory=dict)

    @property
    def scans_per_s(self) -> float:
        return self.scans / self.elapsed_s if self.ok and self.elapsed_s > 0 else 0.0

    @property
    def state_updates_per_s(self) -> float:
        return self.state_updates / self.elapsed_s if self.ok and self.elapsed_s > 0 else 0.0

    @property
    def cpu_s_per_100k_scans(self) -> float:
        return self.cpu_seconds / self.scans * 100_000 if self.ok and self.scans else 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        ratios = data.pop("ratios")
        data.update(
            scans_per_s=round(self.scans_per_s, 1),
            state_updates_per_s=round(self.state_updates_per_s, 1),
            cpu_s_per_100k_scans=round(self.cpu_s_per_100k_scans, 2),
            **ratios,
        )
        return data


class Harness:
    def __init__(self, broker: EmbeddedBroker, dataset: Dataset, partitions: int, timeout: float) -> None:
        self.bootstrap_servers = broker.bootstrap_servers
        self.dataset = dataset
        self.partitions = partitions
        self.timeout = timeout
        self.run_id = uuid.uuid4().hex[:6]
        self.workdir = Path(tempfile.mkdtemp(prefix="parcelstream-bench-"))
        self._input: TopicNames | None = None
        self.logs: dict[int, Path] = {}

    def topics(self, name: str, *, load: bool) -> TopicNames:
        names = TopicNames(f"bench-{self.run_id}-{name}")
        create_topics(self.bootstrap_servers, names.prefix, self.partitions)
        if load:
            preload(self.bootstrap_servers, names, self.dataset)
        return names

    def shared_input(self) -> TopicNames:
        """One pre-loaded input for the contenders that take input and output prefixes separately."""
        if self._input is None:
            self._input = self.topics("input", load=True)
        return self._input

    # -- contenders of our own, which report their own figures --------------------------------

    def run_contender(self, name: str, python: str = sys.executable) -> Outcome:
        inputs = self.shared_input()
        outputs = self.topics(name, load=False)
        result_file = self.workdir / f"{name}.json"
        command = [
            python,
            "-m",
            f"benchmarks.contenders.{name}",
            "--bootstrap-servers",
            self.bootstrap_servers,
            "--input-prefix",
            inputs.prefix,
            "--output-prefix",
            outputs.prefix,
            "--inputs",
            str(len(self.dataset.records)),
            "--partitions",
            str(self.partitions),
            "--result",
            str(result_file),
        ]
        log_path = self.workdir / f"{name}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **RETAIN_ALL},  # as the worker's (the Quix contender builds its core from them)
            )
        try:
            deadline = time.monotonic() + self.timeout
            while not result_file.exists():
                if process.poll() is not None:
                    return Outcome(name, error=f"exited with {process.returncode}: {_tail(log_path)}")
                if time.monotonic() > deadline:
                    return Outcome(name, error=f"no result within {self.timeout:.0f} s: {_tail(log_path)}")
                time.sleep(0.2)  # polling for the result file, with a deadline
            report = json.loads(result_file.read_text())
        finally:
            stop_processes([process])
        return Outcome(
            name,
            ok=True,
            scans=self.dataset.scans,
            inputs=report["inputs"],
            state_updates=report["state_updates"],
            elapsed_s=report["elapsed_s"],
            cpu_seconds=report["cpu_seconds"],
            peak_rss_bytes=report["peak_rss_bytes"],
        )

    def run_quix(self) -> Outcome:
        try:
            python = ensure_quix_venv()
        except RuntimeError as error:
            return Outcome("quix_streams", error=str(error))
        return self.run_contender("quix_streams", python=python)

    # -- the parcelstream worker, measured from outside ---------------------------------------

    def start_workers(
        self, topics: TopicNames, count: int, label: str, env: dict[str, str] | None = None
    ) -> list[subprocess.Popen[bytes]]:
        processes = []
        for index in range(count):
            log_path = self.workdir / f"{label}-{index}.log"
            command = [
                sys.executable,
                "-m",
                "streams",
                "worker",
                "--bootstrap-servers",
                self.bootstrap_servers,
                "--topic-prefix",
                topics.prefix,
                "--partitions",
                str(self.partitions),
                "--log-level",
                "warning",
                "--data-dir",
                str(self.workdir / f"{label}-{index}-data"),
            ]
            with open(log_path, "wb") as log:
                process = subprocess.Popen(
                    command,
                    cwd=REPO_ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    # The dataset's journeys span months of event time and arrive at once: keep every
                    # parcel, so the run measures whole journeys (and state_bytes_per_parcel their size).
                    env={**os.environ, **RETAIN_ALL, **(env or {})},
                )
            self.logs[process.pid] = log_path
            processes.append(process)
        return processes

    def log_tail(self, process: subprocess.Popen[bytes]) -> str:
        log_path = self.logs.get(process.pid)
        return _tail(log_path) if log_path else ""

    def run_worker(self, workers: int) -> Outcome:
        name = f"parcelstream_{workers}w"
        topics = self.topics(name, load=True)
        counter = OutputCounter(self.bootstrap_servers, topics.parcel_state, self.partitions)
        processes = self.start_workers(topics, workers, name)
        group = f"{topics.prefix}-worker"
        inputs = [topics.scans, topics.manifests, topics.scans_fanout]
        cpu_at_first: list[float] | None = None
        cpu_at_last = [0.0] * workers
        try:
            deadline = time.monotonic() + self.timeout
            last_check = 0.0
            while True:
                for process in processes:
                    if process.poll() is not None:
                        detail = self.log_tail(process)
                        return Outcome(name, error=f"a worker exited with {process.returncode}: {detail}")
                if time.monotonic() > deadline:
                    return Outcome(name, error=f"not done within {self.timeout:.0f} s ({counter.count} states)")
                if counter.poll(0.5):
                    cpus = [cpu_seconds(process.pid) for process in processes]
                    if cpu_at_first is None:
                        cpu_at_first = cpus
                    cpu_at_last = cpus
                idle = time.monotonic() - counter.last_arrival
                if counter.count and idle >= IDLE_SECONDS and time.monotonic() - last_check >= 1.0:
                    last_check = time.monotonic()
                    if group_caught_up(self.bootstrap_servers, group, inputs, self.partitions):
                        break
            peak = sum(peak_rss_bytes(process.pid) for process in processes)
        finally:
            counter.close()
            stop_processes(processes)
        assert counter.first_timestamp_ms is not None and cpu_at_first is not None
        return Outcome(
            name,
            ok=True,
            scans=self.dataset.scans,
            inputs=len(self.dataset.records),
            state_updates=counter.count,
            elapsed_s=max(0.001, (counter.last_timestamp_ms - counter.first_timestamp_ms) / 1000),
            cpu_seconds=sum(cpu_at_last) - sum(cpu_at_first),
            peak_rss_bytes=peak,
            processes=workers,
            state_bytes_per_parcel=self.state_bytes_per_parcel(group),
        )

    def state_bytes_per_parcel(self, app_id: str) -> float | None:
        """Mean bytes of the latest value of each key of the worker's parcels table (its changelog)."""
        sizes = latest_value_bytes(self.bootstrap_servers, f"{app_id}-parcels-changelog", self.partitions)
        return round(sum(sizes.values()) / len(sizes), 1) if sizes else None

    def run_latency(self, max_scans_per_s: float, seconds: float, fetch_max_wait: float) -> list[dict[str, Any]]:
        label = f"latency-fetch-{fetch_max_wait:g}s"
        topics = self.topics(label, load=False)
        processes = self.start_workers(topics, 1, label, {"PARCELSTREAM_FETCH_MAX_WAIT": str(fetch_max_wait)})
        load = LoadRun(self.bootstrap_servers, topics, self.partitions)
        records = iter(self.dataset.values)
        results: list[dict[str, Any]] = []
        try:
            first = next(record for record in records if record[0] == "scan")
            if not load.warm_up(first, timeout=min(self.timeout, 90)):
                raise RuntimeError(f"the worker published no state within 90 s: {self.log_tail(processes[0])}")
            for fraction in LOAD_FRACTIONS:
                rate = max(1.0, fraction * max_scans_per_s)
                console.print(
                    f"  latency at {fraction:.0%} of the maximum, fetch wait {fetch_max_wait:g} s: "
                    f"{rate:,.0f} records/s for {seconds:g} s"
                )
                result = load.run(records, rate, seconds)
                results.append({"load_fraction": fraction, "fetch_max_wait_s": fetch_max_wait, **asdict(result)})
        finally:
            load.close()
            stop_processes(processes)
        return results


def ensure_quix_venv() -> str:
    """Quix Streams in its own virtualenv (it pins its own confluent-kafka), created on first use."""
    python = QUIX_VENV / "bin" / "python"
    marker = QUIX_VENV / "requirements.txt"
    if python.exists() and marker.exists() and marker.read_text().split() == list(QUIX_REQUIREMENTS):
        return str(python)
    console.print(f"creating {QUIX_VENV.relative_to(REPO_ROOT)} for Quix Streams (once)...")
    steps = [
        [sys.executable, "-m", "venv", str(QUIX_VENV)],
        [str(python), "-m", "pip", "install", "--quiet", *QUIX_REQUIREMENTS],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"cannot set up the Quix virtualenv: {(done.stderr or done.stdout).strip()[-300:]}")
    marker.write_text("\n".join(QUIX_REQUIREMENTS))
    return str(python)


def _tail(path: Path, chars: int = 300) -> str:
    text = path.read_text(errors="replace").strip() if path.exists() else ""
    return " ".join(text[-chars:].split())


def stop_processes(processes: list[subprocess.Popen[bytes]]) -> None:
    """Stop each process group: SIGTERM, then SIGKILL after 20 s."""
    for process in processes:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def add_ratios(outcomes: dict[str, Outcome]) -> None:
    """Scans/s ratios to the fastest raw loop, to Quix Streams and to naive Faust (None: not measured)."""
    raw = max((outcomes[n].scans_per_s for n in ("raw_confluent", "raw_aiokafka") if n in outcomes), default=0.0)
    references = {
        "ratio_to_raw": raw,
        "ratio_to_quix": outcomes["quix_streams"].scans_per_s if "quix_streams" in outcomes else 0.0,
        "ratio_to_naive_faust": outcomes["naive_faust"].scans_per_s if "naive_faust" in outcomes else 0.0,
    }
    for outcome in outcomes.values():
        outcome.ratios = {
            key: (round(outcome.scans_per_s / reference, 3) if reference and outcome.ok else None)
            for key, reference in references.items()
        }


def targets(outcomes: dict[str, Outcome], latency: list[dict[str, Any]], dataset: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets ("Worker hot path", issue 15; the table bytes of issue 13), each with
    ``met``: true, false, or null when this run did not measure it."""
    names = ("parcelstream_1w", "parcelstream_2w", "quix_streams", "raw_aiokafka")
    one, two, quix, raw = (outcomes.get(name) for name in names)
    worker_wait = WorkerSettings().fetch_max_wait
    half = next((r for r in latency if r["load_fraction"] == 0.5 and r["fetch_max_wait_s"] == worker_wait), None)

    def verdict(value: float | None, threshold: float | None, met: Callable[[float, float], bool]) -> dict[str, Any]:
        judged = None if value is None or threshold is None else met(value, threshold)
        return {"value": value, "threshold": threshold, "met": judged}

    def ratio(numerator: Outcome | None, denominator: Outcome | None) -> float | None:
        measured = numerator and numerator.ok and denominator and denominator.ok and denominator.scans_per_s
        return round(numerator.scans_per_s / denominator.scans_per_s, 3) if measured else None  # type: ignore[union-attr]

    measured_one = one is not None and one.ok
    peak_mb = round(one.peak_rss_bytes / 2**20, 1) if one is not None and measured_one else None
    return {
        "one_worker_vs_raw_aiokafka": verdict(ratio(one, raw), 0.15, operator.ge),
        "one_worker_vs_quix": verdict(ratio(one, quix), 1.5, operator.ge),
        "p99_ms_at_50_percent": verdict(half["p99_ms"] if half and half["states"] else None, 250.0, operator.lt),
        "two_workers_vs_one": verdict(ratio(two, one), 1.8, operator.ge),
        "one_worker_peak_rss_mb": verdict(peak_mb, baseline_peak_rss_mb(dataset), operator.le),
        "state_bytes_per_parcel": verdict(one.state_bytes_per_parcel if measured_one else None, 3000.0, operator.lt),
    }


def ceilings(outcomes: dict[str, Outcome]) -> dict[str, float | None]:
    """The throughput targets' best values for any worker running this core: the core alone
    (``core_only``, no Kafka) over the same references (None: not measured). A target above its
    ceiling is out of reach of every Kafka shell around today's core."""
    core, raw, quix = (outcomes.get(name) for name in ("core_only", "raw_aiokafka", "quix_streams"))

    def ratio(reference: Outcome | None) -> float | None:
        measured = core and core.ok and reference and reference.ok and reference.scans_per_s
        return round(core.scans_per_s / reference.scans_per_s, 3) if measured else None  # type: ignore[union-attr]

    return {"one_worker_vs_raw_aiokafka": ratio(raw), "one_worker_vs_quix": ratio(quix)}


def baseline_peak_rss_mb(dataset: dict[str, Any]) -> float | None:
    """One worker's peak RSS when issue 15 was filed, on the same dataset (seed, scans, partitions);
    None when no run of that dataset was saved then."""
    same = ("seed", "scans", "partitions")
    for path in RSS_BASELINES:
        report = json.loads(path.read_text())
        worker = report["contenders"].get("parcelstream_1w")
        if worker and worker["ok"] and all(report["dataset"][key] == dataset[key] for key in same):
            return round(worker["peak_rss_bytes"] / 2**20, 1)
    return None


def print_table(
    outcomes: dict[str, Outcome],
    latency: list[dict[str, Any]],
    goals: dict[str, Any],
    ceiling: dict[str, float | None] | None = None,
) -> None:
    table = Table(title="parcelstream benchmark (scans/s: input scans; states/s: ParcelState updates)")
    for column in ("contender", "scans/s", "states/s", "× raw", "× quix", "× naive faust", "CPU s/100k", "peak RSS MB"):
        table.add_column(column, justify="left" if column == "contender" else "right")

    def ratio(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    for outcome in outcomes.values():
        if not outcome.ok:
            table.add_row(outcome.name, f"[red]failed[/red]: {outcome.error[:60]}", *[""] * 6)
            continue
        table.add_row(
            outcome.name + (f" ({outcome.processes} processes)" if outcome.processes > 1 else ""),
            f"{outcome.scans_per_s:,.0f}",
            f"{outcome.state_updates_per_s:,.0f}",
            ratio(outcome.ratios["ratio_to_raw"]),
            ratio(outcome.ratios["ratio_to_quix"]),
            ratio(outcome.ratios["ratio_to_naive_faust"]),
            f"{outcome.cpu_s_per_100k_scans:.1f}",
            f"{outcome.peak_rss_bytes / 2**20:,.0f}",
        )
    report_console.print(table)
    if latency:
        lat = Table(title="event time → ParcelState latency, parcelstream_1w at fixed offered load")
        columns = (
            "fetch wait s",
            "load",
            "records/s",
            "published",
            "states",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "p99 own scan",
            "p99 fan-out",
        )
        for column in (*columns, "p99 × baseline"):
            lat.add_column(column, justify="right")
        baseline = {r["load_fraction"]: r for r in latency if r["fetch_max_wait_s"] == FAUST_FETCH_MAX_WAIT}
        for row in latency:
            base = baseline.get(row["load_fraction"])
            versus = row["p99_ms"] / base["p99_ms"] if base and base["p99_ms"] and row["states"] else None
            lat.add_row(
                f"{row['fetch_max_wait_s']:g}",
                f"{row['load_fraction']:.0%}",
                f"{row['offered_per_s']:,.0f}",
                str(row["published"]),
                str(row["states"]),
                *(f"{row[key]:,.0f}" for key in ("p50_ms", "p95_ms", "p99_ms")),
                *(f"{row[key]:,.0f}" for key in ("direct_p99_ms", "fanout_p99_ms")),
                "-" if versus is None else f"{versus:.3f}",
            )
        report_console.print(lat)
    for goal, verdict in goals.items():
        met = {True: "[green]met[/green]", False: "[red]missed[/red]", None: "not measured"}[verdict["met"]]
        best = (ceiling or {}).get(goal)
        limit = "" if best is None else f", the core alone {best}"
        report_console.print(f"target {goal}: {verdict['value']} (threshold {verdict['threshold']}{limit}): {met}")


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command(context_settings={"allow_extra_args": True})
def main(  # noqa: PLR0915 (the run's steps in order read best in one place)
    ctx: typer.Context,
    scans: Annotated[int, typer.Option(help="Input scans in the dataset (the issue's figures use 200000).")] = 200_000,
    seed: Annotated[int, typer.Option(help="Simulator seed: the same seed gives the same data.")] = 7,
    partitions: Annotated[int, typer.Option(help="Partitions of every topic.")] = 4,
    only: Annotated[
        list[str] | None,
        typer.Option(help=f"Run only these contenders (names after the flag): {', '.join(CONTENDERS)}."),
    ] = None,
    quick: Annotated[bool, typer.Option(help="Smoke run: 3000 scans, short latency phases.")] = False,
    output: Annotated[
        Path | None, typer.Option(help="JSON result file (default: benchmarks/results/<timestamp>.json).")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds each contender may take before it counts as failed.")] = 900,
    latency_seconds: Annotated[float, typer.Option(help="Seconds of offered load per latency phase.")] = 10,
) -> None:
    """Measure the raw loops, Quix Streams, naive Faust and the parcelstream worker on one broker and one dataset."""
    if ctx.args and not only:
        console.print(f"[red]error:[/red] unexpected arguments {' '.join(ctx.args)}; contender names go after --only")
        raise typer.Exit(2)
    named = [*(only or []), *ctx.args]
    selected = [name for item in named for name in item.replace(",", " ").split()] or list(CONTENDERS)
    unknown = [name for name in selected if name not in CONTENDERS]
    if unknown:
        console.print(f"[red]error:[/red] unknown contender {', '.join(unknown)}; choose from {', '.join(CONTENDERS)}")
        raise typer.Exit(2)
    if quick:
        scans, latency_seconds = min(scans, 3000), min(latency_seconds, 3)
    if scans < 1 or partitions < 1:
        console.print("[red]error:[/red] --scans and --partitions must be at least 1")
        raise typer.Exit(2)
    output = output or RESULTS_DIR / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    console.print(f"simulating {scans:,} scans (seed {seed})...")
    dataset = build_dataset(scans, seed)
    console.print(
        f"dataset: {dataset.scans:,} scans ({dataset.unit_scans:,} unit scans, mean {dataset.mean_scan_bytes:.0f} B), "
        f"{dataset.manifests:,} manifests, {dataset.parcels:,} parcels simulated"
    )
    broker = EmbeddedBroker()
    try:
        broker.start()
    except StackError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from None
    outcomes: dict[str, Outcome] = {}
    latency: list[dict[str, Any]] = []
    started = time.monotonic()
    try:
        harness = Harness(broker, dataset, partitions, timeout)
        runners: dict[str, Callable[[], Outcome]] = {
            "raw_confluent": lambda: harness.run_contender("raw_confluent"),
            "raw_aiokafka": lambda: harness.run_contender("raw_aiokafka"),
            "core_only": lambda: harness.run_contender("core_only"),
            "quix_streams": harness.run_quix,
            "naive_faust": lambda: harness.run_contender("naive_faust"),
            "parcelstream_1w": lambda: harness.run_worker(1),
            "parcelstream_2w": lambda: harness.run_worker(2),
        }
        for name in THROUGHPUT:
            if name not in selected:
                continue
            console.print(f"[bold]{name}[/bold]...")
            try:
                outcomes[name] = runners[name]()
            except Exception as error:  # a contender's failure is a row of the table, not the end of the run
                outcomes[name] = Outcome(name, error=f"{type(error).__name__}: {error}")
            outcome = outcomes[name]
            console.print(
                f"  {outcome.scans_per_s:,.0f} scans/s, {outcome.state_updates_per_s:,.0f} states/s"
                if outcome.ok
                else f"  [red]failed[/red]: {outcome.error}"
            )
        if "latency" in selected:
            one = outcomes.get("parcelstream_1w")
            if one is None or not one.ok:
                console.print("latency: skipped (needs parcelstream_1w's measured maximum in the same run)")
            else:
                console.print("[bold]latency[/bold]...")
                try:
                    for fetch_max_wait in (WorkerSettings().fetch_max_wait, FAUST_FETCH_MAX_WAIT):
                        latency += harness.run_latency(one.scans_per_s, latency_seconds, fetch_max_wait)
                except Exception as error:
                    console.print(f"  [red]failed[/red]: {type(error).__name__}: {error}")
    finally:
        broker.stop()
    add_ratios(outcomes)
    dataset_report = {
        "seed": seed,
        "parcels": dataset.parcels,
        "scans": dataset.scans,
        "unit_scans": dataset.unit_scans,
        "manifests": dataset.manifests,
        "mean_scan_bytes": round(dataset.mean_scan_bytes, 1),
        "partitions": partitions,
    }
    goals = targets(outcomes, latency, dataset_report)
    ceiling = ceilings(outcomes)
    report = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "broker": "tansu (embedded, memory)"},
        "dataset": dataset_report,
        "contenders": {name: outcome.to_json() for name, outcome in outcomes.items()},
        "latency": latency,
        "targets": goals,
        "ceilings": ceiling,
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2))
    print_table(outcomes, latency, goals, ceiling)
    console.print(f"saved {output} ({report['wall_seconds']:.0f} s)")


if __name__ == "__main__":
    app(prog_name="python -m benchmarks.run")
