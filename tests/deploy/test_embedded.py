"""The embedded stack: a clear one-line error for each thing a user can get wrong, and a clean stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.embedded import EmbeddedBroker, StackError, check_redis, create_topics, free_port
from schemas.topics import ALL_TOPICS

PARCELSTREAM = [sys.executable, "-c", "from deploy.cli import main; main()"]


def _run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PARCELSTREAM, *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or dict(os.environ),
    )


def test_port_in_use_is_one_clear_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run_cli("dev", "up", "--port", str(port))
    assert result.returncode == 1
    assert f"port {port} is already in use" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2


def test_missing_binary_is_one_clear_line(tmp_path: Path) -> None:
    env = dict(os.environ, CALF_TANSU_BIN=str(tmp_path / "no-such-tansu"))
    result = _run_cli("dev", "up", env=env)
    assert result.returncode == 1
    assert "no Tansu broker binary" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_redis_says_how_to_start_it() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(StackError) as error:
        check_redis(url)
    assert "redis-server --daemonize yes" in str(error.value)
    result = _run_cli("dev", "up", "--redis-url", url)
    assert result.returncode == 1
    assert "does not answer" in result.stderr
    assert "Traceback" not in result.stderr


def test_create_topics_is_idempotent_and_sets_explicit_configs(bootstrap_servers: str) -> None:
    from confluent_kafka.admin import AdminClient, ConfigResource

    prefix = f"t-embedded-{os.getpid()}"
    created = create_topics(bootstrap_servers, prefix, partitions=3)
    assert sorted(created) == sorted(spec.name(prefix) for spec in ALL_TOPICS)
    assert create_topics(bootstrap_servers, prefix, partitions=3) == []
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    metadata = admin.list_topics(timeout=10)
    for spec in ALL_TOPICS:
        assert len(metadata.topics[spec.name(prefix)].partitions) == 3
    resource = ConfigResource("topic", ALL_TOPICS[3].name(prefix))  # parcel-state: compacted
    configs = admin.describe_configs([resource])[resource].result(timeout=10)
    assert configs["cleanup.policy"].value == "compact"


def test_dev_up_stops_the_broker_on_sigterm() -> None:
    port = free_port()
    process = subprocess.Popen(
        [*PARCELSTREAM, "dev", "up", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        lines = []
        for line in process.stderr:  # blocks until the stack prints its ready lines
            lines.append(line)
            if "Ctrl-C stops the stack" in line:
                break
        assert any(f"127.0.0.1:{port}" in line for line in lines)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))  # the broker released its port
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_embedded_broker_context_manager_starts_and_stops() -> None:
    with EmbeddedBroker() as broker:
        port = broker.port
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))
