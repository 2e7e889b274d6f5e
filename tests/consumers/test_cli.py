"""The ``projector`` and ``tracking`` commands fail in one line when they cannot start."""

from __future__ import annotations

import socket

import pytest
from typer.testing import CliRunner

from consumers.cli import app
from deploy.embedded import free_port


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
