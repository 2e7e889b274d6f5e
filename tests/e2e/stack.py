"""The demo stack as the e2e tests see it: `parcelstream demo` run as a subprocess on free ports, a
real Prometheus scraping it, and the helpers to read both from outside.

Every process the demo starts inherits an environment marker unique to the run, so the tests can
find (and, as a last resort, end) exactly the processes this run started by scanning /proc.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

from deploy.demo import DemoOptions, plan_stages
from deploy.embedded import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
MARKER_ENV = "PARCELSTREAM_E2E_RUN"
T = TypeVar("T")


def wait_for(condition: Callable[[], T | None], timeout: float, what: str, interval: float = 0.5) -> T:
    """Poll ``condition`` until it returns a truthy value; fail with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)  # polling interval of a condition wait, not a synchronisation sleep


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def demo_options(redis_url: str, redis_prefix: str, duration: float, rate: float) -> DemoOptions:
    """Demo options with every port moved to free ones (the metrics ports are a block from a base)."""
    others = {free_port() for _ in range(3)}
    while True:
        base = random.randrange(20000, 50000)
        block = {base + offset for offset in (0, 1, 2, 3, 4, 5, 11)}
        if len(others) == 3 and not block & others and all(_bindable(port) for port in block):
            break
        others = {free_port() for _ in range(3)}
    broker_port, tracking_port, gateway_port = sorted(others)
    return DemoOptions(
        duration=duration,
        rate=rate,
        broker_port=broker_port,
        tracking_port=tracking_port,
        gateway_port=gateway_port,
        metrics_base_port=base,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
    )


def metrics_ports(options: DemoOptions) -> dict[str, int]:
    """Stage name → port of its /metrics, as the demo itself plans them."""
    ports = {}
    for stage in plan_stages(options, Path("/nonexistent"), receiver_port=0):
        if stage.metrics_url:
            match = re.search(r":(\d+)/metrics$", stage.metrics_url)
            assert match, stage.metrics_url
            ports[stage.name] = int(match.group(1))
    return ports


def demo_argv(options: DemoOptions) -> list[str]:
    """README command 1 (`make demo` → `parcelstream demo`) with the test's options."""
    script = Path(sys.executable).parent / "parcelstream"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "deploy"]
    return [
        *command,
        "demo",
        "--duration",
        str(options.duration),
        "--rate",
        str(options.rate),
        "--workers",
        str(options.workers),
        "--broker-port",
        str(options.broker_port),
        "--tracking-port",
        str(options.tracking_port),
        "--gateway-port",
        str(options.gateway_port),
        "--metrics-base-port",
        str(options.metrics_base_port),
        "--redis-url",
        options.redis_url,
        "--redis-prefix",
        options.redis_prefix,
    ]


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    start_ticks: int
    command: str


def _process_info(pid: int) -> ProcessInfo | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None
    # Field 22 (start time) comes after the parenthesised command name, which may contain spaces.
    start_ticks = int(stat.rsplit(")", 1)[1].split()[19])
    return ProcessInfo(pid, start_ticks, command)


def processes_with_marker(marker: str) -> list[ProcessInfo]:
    """Live processes whose environment carries ``MARKER_ENV=marker`` (zombies have none)."""
    needle = f"{MARKER_ENV}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            info = _process_info(int(entry.name))
            if info is not None:
                found.append(info)
    return found


def still_alive(process: ProcessInfo) -> bool:
    """The same process (same pid and start time, so not a reused pid) is still running."""
    current = _process_info(process.pid)
    if current is None or current.start_ticks != process.start_ticks:
        return False
    with contextlib.suppress(OSError):
        return "Z" not in Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return False


def parse_summary(output: str) -> dict[str, int]:
    """Figure → value of the demo's final "demo summary" table."""
    _, found, table = output.rpartition("demo summary")
    assert found, f"no demo summary in the output:\n{output[-3000:]}"
    figures = {}
    for line in table.splitlines():
        match = re.match(r"^│ (.+?)\s+│\s+([\d,]+) │$", line.strip())
        if match:
            figures[match.group(1)] = int(match.group(2).replace(",", ""))
    return figures


@dataclass
class DemoResult:
    returncode: int
    output: str
    summary: dict[str, int]
    log_dir: Path | None


@dataclass
class DemoRun:
    """One `parcelstream demo` subprocess and what the tests learn about it."""

    options: DemoOptions
    output_path: Path
    marker: str = field(default_factory=lambda: uuid.uuid4().hex)
    process: subprocess.Popen[bytes] | None = None
    seen_processes: list[ProcessInfo] = field(default_factory=list)
    result: DemoResult | None = None
    started_at: float = 0.0

    @property
    def tracking_url(self) -> str:
        return f"http://127.0.0.1:{self.options.tracking_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.options.gateway_port}"

    def elapsed(self) -> str:
        return f"{time.monotonic() - self.started_at:.0f} s"

    def start(self) -> None:
        self.started_at = time.monotonic()
        env = {**os.environ, "COLUMNS": "160", MARKER_ENV: self.marker}
        with open(self.output_path, "wb") as output:
            self.process = subprocess.Popen(
                demo_argv(self.options), env=env, stdout=output, stderr=subprocess.STDOUT, cwd=REPO_ROOT
            )

    def output(self) -> str:
        return self.output_path.read_text(errors="replace")

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def record_processes(self) -> list[ProcessInfo]:
        """Remember this run's live processes, to check later that none outlived the demo."""
        current = processes_with_marker(self.marker)
        known = set(self.seen_processes)
        self.seen_processes.extend(process for process in current if process not in known)
        return current

    def wait_finished(self, timeout: float) -> DemoResult:
        """Wait for the demo to end by itself (duration + drain); the result is kept for later tests."""
        if self.result is None:
            assert self.process is not None
            if self.running():
                self.record_processes()
            try:
                returncode = self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired as error:
                tail = self.output()[-3000:]
                raise AssertionError(f"the demo did not end within {timeout:.0f} s:\n{tail}") from error
            output = self.output()
            log_dir = re.search(r"logs kept in (\S+)", output)
            summary = parse_summary(output) if "demo summary" in output else {}
            self.result = DemoResult(returncode, output, summary, Path(log_dir.group(1)) if log_dir else None)
        return self.result

    def stop(self) -> None:
        """Stop the demo (it stops its stages on SIGTERM); end any process of this run still alive."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        for leftover in processes_with_marker(self.marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(leftover.pid, signal.SIGKILL)
        if self.result is not None and self.result.returncode == 0 and self.result.log_dir is not None:
            shutil.rmtree(self.result.log_dir, ignore_errors=True)


def prometheus_config(options: DemoOptions, rule_file: Path) -> dict[str, Any]:
    """deploy/prometheus/prometheus-local.yml with the demo's default ports replaced by ``options``' ports,
    a 1 s scrape interval and the alert rules at an absolute path."""
    config = yaml.safe_load((REPO_ROOT / "deploy" / "prometheus" / "prometheus-local.yml").read_text())
    defaults = metrics_ports(DemoOptions(workers=options.workers))
    ours = metrics_ports(options)
    port_map = {defaults[name]: ours[name] for name in defaults}
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(rule_file)]
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            targets = []
            for target in static["targets"]:
                host, _, port = target.rpartition(":")
                assert int(port) in port_map, f"{job['job_name']} scrapes {target}, which is no demo port"
                targets.append(f"{host}:{port_map[int(port)]}")
            static["targets"] = targets
    return config


@dataclass
class Prometheus:
    """A real `prometheus` server on a free port, with its own storage directory."""

    config_path: Path
    storage_path: Path
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = shutil.which("prometheus")
        assert binary, "the prometheus binary is not installed (apt-get install prometheus)"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={self.config_path}",
                    f"--storage.tsdb.path={self.storage_path}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def api(self, path: str, **params: str) -> Any:
        """The ``data`` of a Prometheus HTTP API answer; None while the server is not up yet."""
        assert self.process is not None and self.process.poll() is None, self.log_tail()
        try:
            response = httpx.get(f"{self.url}{path}", params=params, timeout=5)
        except httpx.HTTPError:
            return None
        if response.status_code == 503:  # still starting (replaying its write-ahead log)
            return None
        body = response.json()
        assert body.get("status") == "success", body
        return body["data"]

    def query(self, expression: str, **params: str) -> list[dict[str, Any]] | None:
        """An instant query (at ``time=`` if given): its series, or None while the server starts."""
        data = self.api("/api/v1/query", query=expression, **params)
        return None if data is None else data["result"]

    def scalar(self, expression: str, **params: str) -> float | None:
        """The single value of an instant query, or None when it has no (finite) value yet."""
        result = self.query(expression, **params)
        if not result:
            return None
        value = float(result[0]["value"][1])
        return value if math.isfinite(value) else None

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""
