"""The ``keys`` and ``gateway`` commands: what users see, in one line when something is wrong."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from deploy.embedded import free_port
from producers.gateway.cli import app
from schemas.api_keys import CARRIER_KEYS


@pytest.mark.integration
def test_keys_commands_create_list_and_revoke(redis_url: str, redis_prefix: str) -> None:
    runner = CliRunner()
    env = {"PARCELSTREAM_REDIS_URL": redis_url, "PARCELSTREAM_REDIS_PREFIX": redis_prefix}
    created = runner.invoke(
        app, ["keys", "create", "--carrier", "CK", "--source", "flight", "--source", "warehouse"], env=env
    )
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    key_id, _secret = CARRIER_KEYS.split(key) or pytest.fail(f"not a key: {key!r}")

    listed = runner.invoke(app, ["keys", "list"], env=env)
    assert listed.exit_code == 0
    assert key_id in listed.stdout
    assert "active" in listed.stdout
    assert key not in listed.output

    revoked = runner.invoke(app, ["keys", "revoke", key_id], env=env)
    assert revoked.exit_code == 0
    assert "revoked" in runner.invoke(app, ["keys", "list"], env=env).stdout

    unknown = runner.invoke(app, ["keys", "revoke", "0123456789abcdef"], env=env)
    assert unknown.exit_code == 1
    assert "no API key with id" in unknown.output
    bad_source = runner.invoke(app, ["keys", "create", "--carrier", "CK", "--source", "air"], env=env)
    assert bad_source.exit_code == 1
    assert "unknown source" in bad_source.output
    assert "Traceback" not in bad_source.output


def test_commands_fail_in_one_line_without_redis() -> None:
    env = {"PARCELSTREAM_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    result = CliRunner().invoke(app, ["keys", "list"], env=env)
    assert result.exit_code == 1
    assert "does not answer" in result.output
    assert "Traceback" not in result.output


def test_gateway_fails_in_one_line_without_redis_or_with_bad_settings() -> None:
    env = {"PARCELSTREAM_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    result = CliRunner().invoke(app, ["gateway", "--port", str(free_port())], env=env)
    assert result.exit_code == 1
    assert "does not answer" in result.output
    bad = CliRunner().invoke(app, ["gateway", "--max-records", "10", "--burst", "5"], env=env)
    assert bad.exit_code == 1
    assert "gateway_burst (5) must be at least gateway_max_records (10)" in bad.output
    assert "Traceback" not in result.output + bad.output
