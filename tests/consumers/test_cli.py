"""The ``projector`` and ``tracking`` commands fail in one line when they cannot start."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import httpx
import pytest
from typer.testing import CliRunner

from consumers.cli import app
from deploy.embedded import free_port
from tests.stages import wait_for

PARCELSTREAM = [sys.executable, "-c", "from deploy.cli import main; main()"]


@pytest.mark.parametrize("command", ["projector", "tracking"])
def test_commands_fail_in_one_line_without_redis(command: str) -> None:
    env = {"PARCELSTREAM_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    result = CliRunner().invoke(app, [command, "--metrics-port", "0"], env=env)
    output = " ".join(result.output.split())  # the console wraps long lines
    assert result.exit_code == 1
    assert "does not answer" in output
    assert "Start one with: redis-server --daemonize yes" in output
    assert "Traceback" not in output


@pytest.mark.integration
@pytest.mark.parametrize("command", ["projector", "tracking"])
def test_commands_fail_in_one_line_when_the_metrics_port_is_taken(
    command: str, redis_url: str, redis_prefix: str
) -> None:
    env = {"PARCELSTREAM_REDIS_URL": redis_url, "PARCELSTREAM_REDIS_PREFIX": redis_prefix}
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))  # start_http_server binds every interface
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, [command, "--metrics-port", str(port)], env=env)
    assert result.exit_code == 1
    assert f"cannot serve /metrics on port {port}" in " ".join(result.output.split())
    assert "Traceback" not in result.output


@pytest.mark.integration
def test_tracking_flags_set_the_failed_lookup_limit(redis_url: str, redis_prefix: str) -> None:
    """The access limits are flags as well as PARCELSTREAM_* variables: one failed look-up locks here."""
    port = free_port()
    env = {**os.environ, "PARCELSTREAM_REDIS_URL": redis_url, "PARCELSTREAM_REDIS_PREFIX": redis_prefix}
    command = [*PARCELSTREAM, "tracking", "--port", str(port), "--metrics-port", "0"]
    command += ["--max-failed-lookups-per-parcel", "1", "--failed-lookup-window", "60"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as api:

            def healthy() -> bool:
                assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
                try:
                    return api.get("/healthz").status_code == 200
                except httpx.TransportError:
                    return False

            wait_for(healthy, 30, "the tracking service to answer")
            assert api.get("/v1/parcels/LX999999999CN", params={"postcode": "1000"}).status_code == 404
            locked = api.get("/v1/parcels/LX999999999CN", params={"postcode": "1001"})
            assert locked.status_code == 429
            assert 0 < int(locked.headers["retry-after"]) <= 60
    finally:
        process.terminate()
        assert process.wait(timeout=15) is not None
