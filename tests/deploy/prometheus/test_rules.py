"""Prometheus configs and alert rules: promtool checks them and runs their unit tests
(deploy/prometheus/tests/*.yml); every alert has firing and not-firing cases, annotations, a
runbook section in docs/operations.md, and uses metrics of the catalog."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

METRIC = re.compile(r"\bparcelstream_\w+")
LOCAL_PORTS = {
    "parcelstream-simulator": "9101",
    "parcelstream-gateway": "9102",
    "parcelstream-worker": "9103",
    "parcelstream-projector": "9104",
    "parcelstream-notifier": "9105",
    "parcelstream-tracking": "9106",
}


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is missing: run `bash deploy/local/ensure-services.sh` (Debian package prometheus)"
    return path


@pytest.fixture(scope="module")
def prometheus_dir(repo_root: Path) -> Path:
    return repo_root / "deploy" / "prometheus"


@pytest.fixture(scope="module")
def alerts(prometheus_dir: Path) -> list[dict[str, Any]]:
    rules = yaml.safe_load((prometheus_dir / "alerts.yml").read_text(encoding="utf-8"))
    return [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]


def _promtool(promtool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus-local.yml"])
def test_promtool_check_config(promtool: str, prometheus_dir: Path, config: str) -> None:
    result = _promtool(promtool, "check", "config", config, cwd=prometheus_dir)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_rules(promtool: str, prometheus_dir: Path, alerts: list[dict[str, Any]]) -> None:
    result = _promtool(promtool, "check", "rules", "alerts.yml", cwd=prometheus_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts)} rules found" in result.stdout


def test_promtool_test_rules(promtool: str, prometheus_dir: Path) -> None:
    test_files = sorted(str(path.relative_to(prometheus_dir)) for path in (prometheus_dir / "tests").glob("*.yml"))
    assert test_files
    result = _promtool(promtool, "test", "rules", *test_files, cwd=prometheus_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAILED" not in result.stdout


def test_every_alert_has_firing_and_not_firing_cases(prometheus_dir: Path, alerts: list[dict[str, Any]]) -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in (prometheus_dir / "tests").glob("*.yml"):
        unit_tests = yaml.safe_load(path.read_text(encoding="utf-8"))
        for case in unit_tests["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {alert["alert"] for alert in alerts}
    assert names - firing == set(), "alerts without a firing case"
    assert names - quiet == set(), "alerts without a not-firing case"


def test_alerts_are_documented(repo_root: Path, alerts: list[dict[str, Any]]) -> None:
    guide = (repo_root / "docs" / "operations.md").read_text(encoding="utf-8")
    headings = set(re.findall(r"^#{2,4} (\w+)", guide, flags=re.MULTILINE))
    for alert in alerts:
        annotations = alert["annotations"]
        assert annotations.get("summary") and annotations.get("description"), alert["alert"]
        assert annotations["runbook_url"] == f"docs/operations.md#{alert['alert'].lower()}"
        assert alert["alert"] in headings, f"no runbook section for {alert['alert']} in docs/operations.md"
        assert alert["labels"]["severity"] in {"warning", "critical"}


def test_alerts_use_catalog_metrics(alerts: list[dict[str, Any]], metric_catalog: dict[str, str]) -> None:
    for alert in alerts:
        for series in METRIC.findall(alert["expr"]):
            base = re.sub(r"_(bucket|sum|count)$", "", series)
            known = series in metric_catalog or metric_catalog.get(base) == "histogram"
            assert known, f"{alert['alert']}: {series}"


def test_local_config_scrapes_the_demo_ports(prometheus_dir: Path) -> None:
    config = yaml.safe_load((prometheus_dir / "prometheus-local.yml").read_text(encoding="utf-8"))
    targets = {
        job["job_name"]: [target for static in job["static_configs"] for target in static["targets"]]
        for job in config["scrape_configs"]
    }
    for job, port in LOCAL_PORTS.items():
        assert f"127.0.0.1:{port}" in targets[job], job


def test_production_config_scrapes_every_stage_by_service_name(prometheus_dir: Path, repo_root: Path) -> None:
    config = yaml.safe_load((prometheus_dir / "prometheus.yml").read_text(encoding="utf-8"))
    compose = yaml.safe_load((repo_root / "deploy/compose/docker-compose.yml").read_text(encoding="utf-8"))
    hosts: dict[str, set[str]] = {}
    for job in config["scrape_configs"]:
        found = {target.split(":")[0] for static in job.get("static_configs", []) for target in static["targets"]}
        found |= {name for sd in job.get("dns_sd_configs", []) for name in sd["names"]}
        hosts[job["job_name"]] = found
    for job in LOCAL_PORTS:
        service = job.removeprefix("parcelstream-")
        assert hosts[job] == {service}, job
        assert service in compose["services"], service
