"""``parcelstream demo``: the production topology in miniature.

It starts the embedded stack (Tansu + topics; Redis must answer), then launches every stage as its
own process, exactly as a deployment would run them — the hub simulator (carriers), the Faust
worker(s), the projector, the notifier, the tracking service and a local webhook receiver standing
in for a customer's endpoint — and shows a live summary read from the stages' own Prometheus
``/metrics`` endpoints, the same numbers operations would see in Grafana.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from deploy.embedded import EmbeddedBroker, StackError, check_redis, create_topics, free_port
from schemas.sla import SLA_EVENT_KINDS, SLA_RULES
from schemas.stages import STAGES
from schemas.statuses import STATUSES

#: After the simulator ends, the demo stops once this many scrapes in a row show no progress.
QUIET_SCRAPES = 4
DEMO_WEBHOOK_SECRET = "demo-webhook-secret"
DEMO_TRACKING_SECRET = "demo-tracking-secret"
DEMO_OPERATIONS_KEY = "demo-operations-key"


@dataclass(frozen=True)
class DemoOptions:
    duration: float = 120.0
    rate: float = 12.0
    speed: float = 8640.0
    seed: int = 2026
    workers: int = 2
    partitions: int = 4
    broker_port: int = 0
    tracking_port: int = 8080
    gateway_port: int = 8081
    metrics_base_port: int = 9101
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "parcelstream-demo"
    topic_prefix: str = "parcelstream"
    drain_seconds: float = 30.0


@dataclass
class StageProcess:
    """One stage of the pipeline, run as its own OS process."""

    name: str
    argv: list[str]
    metrics_url: str | None
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self, env: Mapping[str, str]) -> None:
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.argv, env=dict(env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    @property
    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)

    def log_tail(self, lines: int = 8) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Snapshot:
    """Sums of the stages' metrics, by metric name and label values."""

    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(float))
    )

    def total(self, metric: str, **match: str) -> float:
        return sum(
            value
            for labels, value in self.samples.get(metric, {}).items()
            if all(dict(labels).get(k) == v for k, v in match.items())
        )

    def by(self, metric: str, label: str) -> dict[str, float]:
        result: dict[str, float] = defaultdict(float)
        for labels, value in self.samples.get(metric, {}).items():
            result[dict(labels).get(label, "")] += value
        return dict(result)


class MetricsScraper:
    """Sums the stages' /metrics; a stage that has finished (the simulator) keeps its last figures."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self._last_text: dict[str, str] = {}
        self._client = httpx.Client()

    def scrape(self) -> Snapshot:
        snapshot = Snapshot()
        for url in self.urls:
            # A stage not up yet, or finished, keeps what it said last.
            with contextlib.suppress(httpx.HTTPError):
                self._last_text[url] = self._client.get(url, timeout=2).text
            for family in text_string_to_metric_families(self._last_text.get(url, "")):
                for sample in family.samples:
                    if sample.name.endswith(("_created", "_bucket")):
                        continue
                    key = tuple(sorted(sample.labels.items()))
                    snapshot.samples[sample.name][key] += sample.value
        return snapshot

    def get_json(self, url: str) -> dict[str, int]:
        try:
            return dict(self._client.get(url, timeout=2).json())
        except (httpx.HTTPError, ValueError):
            return {}

    def latest_movements(self, tracking_url: str, count: int = 2) -> list[dict[str, Any]]:
        """The newest movements of the board (operations API), or none while it does not answer."""
        try:
            response = self._client.get(
                f"{tracking_url}/v1/operations/movements",
                params={"limit": count},
                headers={"X-Operations-Key": DEMO_OPERATIONS_KEY},
                timeout=2,
            )
            return list(response.json()["movements"]) if response.status_code == 200 else []
        except (httpx.HTTPError, ValueError, KeyError):
            return []

    def close(self) -> None:
        self._client.close()


def _parcelstream(*args: str) -> list[str]:
    """``parcelstream <args>`` with this interpreter: how a deployment starts each stage."""
    return [sys.executable, "-m", "deploy", *args]


def plan_stages(options: DemoOptions, log_dir: Path, receiver_port: int) -> list[StageProcess]:
    """Every process of the demo, in start order (consumers first, carriers last)."""
    port = options.metrics_base_port
    stages = [
        StageProcess(
            "webhook-receiver",
            [
                sys.executable,
                "-m",
                "deploy.webhook_receiver",
                "--port",
                str(receiver_port),
                "--secret",
                DEMO_WEBHOOK_SECRET,
            ],
            None,
            log_dir / "webhook-receiver.log",
        ),
        StageProcess(
            "gateway",
            _parcelstream("gateway", "--port", str(options.gateway_port), "--metrics-port", str(port + 1)),
            f"http://127.0.0.1:{port + 1}/metrics",
            log_dir / "gateway.log",
        ),
        StageProcess(
            "projector",
            _parcelstream("projector", "--metrics-port", str(port + 3)),
            f"http://127.0.0.1:{port + 3}/metrics",
            log_dir / "projector.log",
        ),
        StageProcess(
            "notifier",
            # The demo's webhook receiver listens on loopback: allow-listed (public HTTPS only otherwise).
            _parcelstream("notifier", "--metrics-port", str(port + 4), "--egress-allow", "127.0.0.1/32"),
            f"http://127.0.0.1:{port + 4}/metrics",
            log_dir / "notifier.log",
        ),
        StageProcess(
            "tracking",
            # /metrics on an operations port, never on the public tracking port.
            _parcelstream("tracking", "--port", str(options.tracking_port), "--metrics-port", str(port + 5)),
            f"http://127.0.0.1:{port + 5}/metrics",
            log_dir / "tracking.log",
        ),
    ]
    for index in range(options.workers):
        worker_port = port + 2 if index == 0 else port + 10 + index
        stages.append(
            StageProcess(
                f"worker-{index + 1}",
                _parcelstream(
                    "worker",
                    "--metrics-port",
                    str(worker_port),
                    "--clock-speed",
                    str(options.speed),
                    "--data-dir",
                    str(log_dir / f"worker-{index + 1}-data"),
                ),
                f"http://127.0.0.1:{worker_port}/metrics",
                log_dir / f"worker-{index + 1}.log",
            )
        )
    stages.append(
        StageProcess(
            "simulator",
            _parcelstream(
                "simulate",
                "--seed",
                str(options.seed),
                "--rate",
                str(options.rate),
                "--speed",
                str(options.speed),
                "--duration",
                str(options.duration),
                "--metrics-port",
                str(port),
                "--quiet",
            ),
            f"http://127.0.0.1:{port}/metrics",
            log_dir / "simulator.log",
        )
    )
    return stages


def _duration(seconds: float) -> str:
    hours = int(seconds // 3600)
    return f"{hours // 24} d {hours % 24} h" if hours >= 48 else f"{hours} h {int(seconds % 3600 // 60)} min"


def _control_room(snapshot: Snapshot, movements: list[dict[str, Any]]) -> tuple[Table, Table]:
    """Backlog per stage (the projector's gauges) and the newest movements (the operations API)."""
    backlog = Table(title="backlog per stage (read model)", expand=True)
    backlog.add_column("stage")
    backlog.add_column("parcels", justify="right")
    backlog.add_column("oldest waiting", justify="right")
    parcels = snapshot.by("parcelstream_backlog_parcels", "stage")
    oldest = snapshot.by("parcelstream_backlog_oldest_seconds", "stage")
    for stage in STAGES:
        count = parcels.get(stage, 0)
        backlog.add_row(stage.replace("_", " "), f"{count:,.0f}", _duration(oldest.get(stage, 0)) if count else "—")
    board = Table(title="latest movements (operations board)", expand=True)
    for column in ("movement", "lane", "state", "expected", "arrived", "cleared", "delivered"):
        board.add_column(column, justify="left" if column in ("movement", "lane", "state") else "right")
    for movement in movements:
        board.add_row(
            f"{movement['kind']} {movement['movement_id']}",
            movement["lane"],
            movement["state"],
            *(f"{movement[name]:,}" for name in ("expected", "arrived", "cleared", "delivered")),
        )
    return backlog, board


def operations_link(options: DemoOptions) -> str:
    """The operations page with the demo's key in the fragment (never sent to the server)."""
    return f"http://127.0.0.1:{options.tracking_port}/operations#key={DEMO_OPERATIONS_KEY}"


def _render(
    snapshot: Snapshot,
    receiver: dict[str, int],
    elapsed: float,
    options: DemoOptions,
    rate: float,
    link: str | None,
    movements: list[dict[str, Any]] | None = None,
) -> Group:
    carriers = Table(title="carriers → scans topic", expand=True)
    carriers.add_column("source")
    carriers.add_column("scans published", justify="right")
    for source, count in sorted(snapshot.by("parcelstream_scans_published_total", "source").items()):
        carriers.add_row(source, f"{count:,.0f}")
    carriers.add_row("manifests", f"{snapshot.total('parcelstream_manifests_published_total'):,.0f}", style="dim")
    carriers.add_row("publish failures", f"{snapshot.total('parcelstream_publish_failures_total'):,.0f}", style="dim")
    carriers.caption = f"{rate:,.0f} scans/s"

    streams = Table(title="stream processor", expand=True)
    streams.add_column("what")
    streams.add_column("count", justify="right")
    streams.add_row("scans ingested", f"{snapshot.total('parcelstream_scans_ingested_total'):,.0f}")
    streams.add_row("duplicates ignored", f"{snapshot.total('parcelstream_duplicate_scans_total'):,.0f}")
    streams.add_row("status updates", f"{snapshot.total('parcelstream_status_updates_total'):,.0f}")
    for stage, count in sorted(snapshot.by("parcelstream_dead_letters_total", "stage").items()):
        streams.add_row(f"dead letters ({stage})", f"{count:,.0f}", style="yellow")

    sla = Table(title="SLA events per rule", expand=True)
    sla.add_column("rule")
    for kind in SLA_EVENT_KINDS:
        sla.add_column(kind.replace("_", " "), justify="right")
    counts = _sla_counts(snapshot)
    for rule in SLA_RULES:
        sla.add_row(rule, *(f"{counts.get((rule, kind), 0):,.0f}" for kind in SLA_EVENT_KINDS))

    parcels = Table(title="parcels per status (read model)", expand=True)
    parcels.add_column("status")
    parcels.add_column("parcels", justify="right")
    per_status = snapshot.by("parcelstream_parcels", "status")
    for status in STATUSES:
        parcels.add_row(status, f"{per_status.get(status, 0):,.0f}")

    customers = Table(title="customer notifications", expand=True)
    customers.add_column("what")
    customers.add_column("count", justify="right")
    for outcome, count in sorted(snapshot.by("parcelstream_notifications_total", "outcome").items()):
        customers.add_row(f"notifier {outcome}", f"{count:,.0f}")
    customers.add_row("webhooks received, verified", f"{receiver.get('verified', 0):,}")
    customers.add_row("webhook duplicates", f"{receiver.get('duplicates', 0):,}")

    top = Table.grid(expand=True)
    for _ in range(3):
        top.add_column(ratio=1)
    top.add_row(carriers, streams, sla)
    bottom = Table.grid(expand=True)
    for _ in range(2):
        bottom.add_column(ratio=1)
    bottom.add_row(parcels, customers)
    control = Table.grid(expand=True)
    control.add_column(ratio=1)
    control.add_column(ratio=2)
    control.add_row(*_control_room(snapshot, movements or []))
    header = (
        f"parcelstream demo · {elapsed:,.0f}/{options.duration:,.0f} s · simulated time ×{options.speed:,.0f} · "
        "Ctrl-C stops"
    )
    header += f"\noperations board: {operations_link(options)}"
    if link:
        header += f"\ntrack a parcel: {link}"
    return Group(Panel(header), top, bottom, control)


def _sla_counts(snapshot: Snapshot) -> dict[tuple[str, str], float]:
    counts: dict[tuple[str, str], float] = defaultdict(float)
    for labels, value in snapshot.samples.get("parcelstream_sla_events_total", {}).items():
        label = dict(labels)
        counts[(label.get("rule", ""), label.get("kind", ""))] += value
    return dict(counts)


@contextlib.contextmanager
def _stop_flag() -> Iterator[threading.Event]:
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_demo(options: DemoOptions, console: Console) -> int:
    """Run the whole pipeline for ``options.duration`` seconds; 0 when every stage did its part."""
    log_dir = Path(tempfile.mkdtemp(prefix="parcelstream-demo-"))
    check_redis(options.redis_url)
    broker = EmbeddedBroker(port=options.broker_port, log_path=log_dir / "broker.log")
    stages: list[StageProcess] = []
    with _stop_flag() as stop:
        try:
            bootstrap = broker.start()
            create_topics(bootstrap, options.topic_prefix, options.partitions)
            _clear_redis_prefix(options.redis_url, options.redis_prefix)
            receiver_port = free_port()
            env = {
                **os.environ,
                "PARCELSTREAM_BOOTSTRAP_SERVERS": bootstrap,
                "PARCELSTREAM_TOPIC_PREFIX": options.topic_prefix,
                "PARCELSTREAM_PARTITIONS": str(options.partitions),
                "PARCELSTREAM_REDIS_URL": options.redis_url,
                "PARCELSTREAM_REDIS_PREFIX": options.redis_prefix,
                "PARCELSTREAM_CLOCK_SPEED": str(options.speed),
                "PARCELSTREAM_TRACKING_SECRET": DEMO_TRACKING_SECRET,
                "PARCELSTREAM_OPERATIONS_KEY": DEMO_OPERATIONS_KEY,
                # Tansu makes a joining consumer wait for its session timeout: keep joins short.
                "PARCELSTREAM_NOTIFIER_SESSION_TIMEOUT_MS": "6000",
                # One local receiver stands in for every merchant's endpoint: lift the per-endpoint limit.
                "PARCELSTREAM_NOTIFIER_RATE_PER_ENDPOINT": "2000",
                "PARCELSTREAM_NOTIFIER_ENDPOINT_CONCURRENCY": "16",
                "PYTHONUNBUFFERED": "1",
            }
            console.print(f"broker {bootstrap} · redis {options.redis_url} · logs {log_dir}")
            stages = plan_stages(options, log_dir, receiver_port)
            _subscribe_demo_webhook(env, receiver_port, log_dir)
            for stage in stages:
                stage.start(env)
            return _watch(stages, options, console, stop, receiver_port)
        finally:
            for stage in reversed(stages):
                stage.stop()
            broker.stop()
            console.print(f"stopped · logs kept in {log_dir}")


def _watch(
    stages: list[StageProcess], options: DemoOptions, console: Console, stop: threading.Event, receiver_port: int
) -> int:
    urls = [s.metrics_url for s in stages if s.metrics_url]
    simulator = next(s for s in stages if s.name == "simulator")
    started = time.monotonic()
    history: list[tuple[float, float]] = []
    snapshot = Snapshot()
    receiver: dict[str, int] = {}
    drain_deadline: float | None = None
    link: str | None = None
    marks: list[tuple[float, ...]] = []
    scraper = MetricsScraper(urls)
    with contextlib.closing(scraper), Live(console=console, refresh_per_second=2, transient=False) as live:
        while not stop.wait(1.0):
            now = time.monotonic()
            snapshot = scraper.scrape()
            receiver = scraper.get_json(f"http://127.0.0.1:{receiver_port}/stats")
            published = snapshot.total("parcelstream_scans_published_total")
            history = [*history[-5:], (now, published)]
            rate = (history[-1][1] - history[0][1]) / max(history[-1][0] - history[0][0], 1e-9)
            if link is None and snapshot.total("parcelstream_parcels") > 0:
                link = sample_tracking_link(options)
            movements = scraper.latest_movements(f"http://127.0.0.1:{options.tracking_port}")
            live.update(_render(snapshot, receiver, now - started, options, rate, link, movements))
            crashed = [s for s in stages if s.exited not in (None, 0) or (s is not simulator and s.exited == 0)]
            if crashed:
                for stage in crashed:
                    console.print(f"[red]{stage.name} exited with code {stage.exited}[/red]\n{stage.log_tail()}")
                return 1
            if simulator.exited == 0 and drain_deadline is None:
                drain_deadline = now + options.drain_seconds
            marks = [*marks[-(QUIET_SCRAPES - 1) :], _progress_marks(snapshot)]
            quiet = len(marks) == QUIET_SCRAPES and len(set(marks)) == 1
            if drain_deadline is not None and (now > drain_deadline or quiet):
                if not quiet:
                    console.print(
                        f"[yellow]still processing {options.drain_seconds:.0f} s after the carriers stopped: "
                        "the figures below are a snapshot[/yellow]"
                    )
                break
    return _summary(snapshot, receiver, console)


def _progress_marks(snapshot: Snapshot) -> tuple[float, ...]:
    """Counters that move while work is still flowing through the pipeline."""
    return tuple(
        snapshot.total(metric)
        for metric in (
            "parcelstream_scans_ingested_total",
            "parcelstream_status_updates_total",
            "parcelstream_notifications_total",
        )
    )


def _summary(snapshot: Snapshot, receiver: dict[str, int], console: Console) -> int:
    per_source = snapshot.by("parcelstream_scans_published_total", "source")
    # What each stage must have done for the demo to count as a success (exit code 0).
    stage_figures = {
        "scans ingested by workers": snapshot.total("parcelstream_scans_ingested_total"),
        "status updates": snapshot.total("parcelstream_status_updates_total"),
        "parcels in the read model": snapshot.total("parcelstream_parcels"),
        "notifications sent": snapshot.total("parcelstream_notifications_total", outcome="sent"),
        "webhooks received (verified)": float(receiver.get("verified", 0)),
    }
    table = Table(title="demo summary")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for source, count in sorted(per_source.items()):
        table.add_row(f"scans published · {source}", f"{count:,.0f}")
    for figure, value in stage_figures.items():
        table.add_row(figure, f"{value:,.0f}")
    table.add_row("SLA events", f"{snapshot.total('parcelstream_sla_events_total'):,.0f}")
    table.add_row("dead letters", f"{snapshot.total('parcelstream_dead_letters_total'):,.0f}")
    table.add_row("webhook duplicates", f"{receiver.get('duplicates', 0):,}")
    console.print(table)
    if not per_source or min(per_source.values()) <= 0:
        console.print("[red]no scans were published[/red]")
        return 1
    idle = [figure for figure, value in stage_figures.items() if value <= 0]
    if idle:
        console.print(f"[red]a stage did not do its part: no {', no '.join(idle)}[/red]")
        return 1
    return 0


def _clear_redis_prefix(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    finally:
        client.close()


def _subscribe_demo_webhook(env: Mapping[str, str], receiver_port: int, log_dir: Path) -> None:
    """Subscribe the local receiver to the simulated merchants' updates, through the notifier's CLI."""
    from producers.simulator.model import EXPORT_MERCHANTS, IMPORT_MERCHANTS

    runs = []
    for merchant in (*IMPORT_MERCHANTS, *EXPORT_MERCHANTS):
        argv = _parcelstream(
            "subscriptions",
            "add",
            "--merchant",
            merchant,
            "--webhook",
            f"http://127.0.0.1:{receiver_port}/hooks/demo",
            "--secret",
            DEMO_WEBHOOK_SECRET,
        )
        runs.append(subprocess.Popen(argv, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    with open(log_dir / "subscriptions.log", "w") as log:
        for run in runs:
            output, _ = run.communicate(timeout=60)
            log.write(output)
            if run.returncode != 0:
                raise StackError(f"could not subscribe the demo webhook: {output.strip()[-300:]}")


def sample_tracking_link(options: DemoOptions) -> str | None:
    """A signed tracking-page link for one parcel of the read model, preferring a delivered one."""
    import redis

    from consumers.read_model import Keys
    from consumers.tracking.tokens import tracking_link

    keys = Keys(options.redis_prefix)
    client = redis.Redis.from_url(options.redis_url, decode_responses=True)
    try:
        for status in ("Delivered", "OutForDelivery", "InTransit", "InfoReceived"):
            found = client.zrevrange(keys.status_index(status), 0, 0)
            if found:
                base_url = f"http://127.0.0.1:{options.tracking_port}"
                return tracking_link(base_url, DEMO_TRACKING_SECRET, found[0])
    except redis.RedisError:
        return None
    finally:
        client.close()
    return None
