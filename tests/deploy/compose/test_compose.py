"""The compose production stack: valid for `docker compose config` where the plugin exists, and
structurally sound everywhere (images, PARCELSTREAM_* settings, ports Prometheus scrapes)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

PIPELINE_IMAGE = "parcelstream:latest"
STAGE_COMMANDS = {"worker", "projector", "notifier", "tracking", "gateway", "simulate", "topics"}
REQUIRED_SETTINGS = {"PARCELSTREAM_BOOTSTRAP_SERVERS", "PARCELSTREAM_TOPIC_PREFIX", "PARCELSTREAM_REDIS_URL"}


@pytest.fixture(scope="module")
def compose_file(repo_root: Path) -> Path:
    return repo_root / "deploy" / "compose" / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose(compose_file: Path) -> dict[str, Any]:
    return yaml.safe_load(compose_file.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def pipeline_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services = {name: s for name, s in compose["services"].items() if s.get("image") == PIPELINE_IMAGE}
    assert services
    return services


def _compose_plugin() -> bool:
    if not shutil.which("docker"):
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=30, check=False)
    return probe.returncode == 0


def test_docker_compose_config_accepts_the_file(compose_file: Path) -> None:
    if not _compose_plugin():
        pytest.skip("the docker client with the compose plugin is not installed here (`docker compose` missing)")
    result = subprocess.run(
        ["docker", "compose", "-f", str(compose_file), "--profile", "simulate", "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_every_service_has_an_image_or_a_build(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        assert service.get("image") or service.get("build"), name


def test_pipeline_services_are_configured_by_parcelstream_settings_only(
    pipeline_services: dict[str, dict[str, Any]], repo_root: Path
) -> None:
    for name, service in pipeline_services.items():
        environment = service["environment"]
        assert isinstance(environment, dict), name
        assert all(key.startswith("PARCELSTREAM_") for key in environment), name
        assert set(environment) >= REQUIRED_SETTINGS, name
        assert service["command"][0] in STAGE_COMMANDS, name
        dockerfile = repo_root / "deploy" / "compose" / service["build"]["context"] / service["build"]["dockerfile"]
        assert dockerfile.is_file(), name


def test_every_stage_of_the_pipeline_runs(pipeline_services: dict[str, dict[str, Any]]) -> None:
    commands = {service["command"][0] for service in pipeline_services.values()}
    assert commands == STAGE_COMMANDS
    assert pipeline_services["topics-init"]["command"] == ["topics", "create"]
    assert pipeline_services["simulator"]["profiles"] == ["simulate"]


def test_workers_do_not_outnumber_partitions(pipeline_services: dict[str, dict[str, Any]]) -> None:
    worker = pipeline_services["worker"]
    assert 1 < worker["deploy"]["replicas"] <= int(worker["environment"]["PARCELSTREAM_PARTITIONS"])


def test_metrics_ports_are_the_ones_prometheus_scrapes(
    compose: dict[str, Any], pipeline_services: dict[str, dict[str, Any]], repo_root: Path
) -> None:
    config = yaml.safe_load((repo_root / "deploy/prometheus/prometheus.yml").read_text(encoding="utf-8"))
    scraped: dict[str, str] = {}
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, port = target.split(":")
                scraped[host] = port
        for sd in job.get("dns_sd_configs", []):
            for host in sd["names"]:
                scraped[host] = str(sd["port"])
    for name, service in pipeline_services.items():
        command = service["command"]
        if "--metrics-port" in command:
            assert scraped[name] == command[command.index("--metrics-port") + 1], name
    # Public ports serve no /metrics: Prometheus scrapes the operations ports.
    assert scraped["tracking"] != pipeline_services["tracking"]["environment"]["PARCELSTREAM_TRACKING_PORT"]
    assert scraped["gateway"] != pipeline_services["gateway"]["environment"]["PARCELSTREAM_GATEWAY_PORT"]
    assert "prometheus" in compose["services"]


def test_references_resolve(compose: dict[str, Any], compose_file: Path) -> None:
    services = compose["services"]
    declared_volumes = set(compose.get("volumes", {}))
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (compose_file.parent / source).exists(), f"{name}: {source}"
            else:
                assert source in declared_volumes, f"{name}: {source}"
