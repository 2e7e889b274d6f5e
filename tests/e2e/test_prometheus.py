"""A real Prometheus scrapes the running demo with deploy/prometheus/prometheus-local.yml (ports moved
to the test's): every stage target is up, the key series carry non-zero values, the alert rules load,
and the two workers split the partitions, their per-process counters summing to the total."""

from __future__ import annotations

import time

import pytest
import yaml

from tests.e2e.stack import REPO_ROOT, DemoRun, Prometheus, metrics_ports, wait_for

pytestmark = pytest.mark.e2e

#: The series operations watch (docs/metrics.md), each of which must show work in the demo.
KEY_SERIES = {
    "scans published": "sum(parcelstream_scans_published_total)",
    "scans ingested": "sum(parcelstream_scans_ingested_total)",
    "status updates": "sum(parcelstream_status_updates_total)",
    "parcels": "sum(parcelstream_parcels)",
    "notifications": "sum(parcelstream_notifications_total)",
    "SLA events": "sum(parcelstream_sla_events_total)",
    # The control room: dwell observed by the workers, backlog kept by the projector (event time).
    "stage dwell observations": "sum(parcelstream_stage_dwell_seconds_count)",
    "backlog parcels": "max(sum by (instance) (parcelstream_backlog_parcels))",
    "backlog oldest (s)": "max(parcelstream_backlog_oldest_seconds)",
    "event-time lag p90 (s)": (
        "histogram_quantile(0.9, sum by (le) (rate(parcelstream_event_time_lag_seconds_bucket[30s])))"
    ),
}
WORKERS_INGESTED = 'sum by (instance) (parcelstream_scans_ingested_total{job="parcelstream-worker"})'


def _targets_up(prometheus: Prometheus, expected: int) -> dict[str, float] | None:
    result = prometheus.query('up{job=~"parcelstream-.*"}')
    if not result:
        return None
    up = {f"{series['metric']['job']} {series['metric']['instance']}": float(series["value"][1]) for series in result}
    return up if len(up) == expected and all(value == 1 for value in up.values()) else None


def test_every_stage_target_is_up_and_the_alert_rules_load(prometheus: Prometheus, demo: DemoRun) -> None:
    local = yaml.safe_load((REPO_ROOT / "deploy" / "prometheus" / "prometheus-local.yml").read_text())
    expected = sum(len(static["targets"]) for job in local["scrape_configs"] for static in job["static_configs"])
    up = wait_for(lambda: _targets_up(prometheus, expected), timeout=90, what="every demo target up in Prometheus")
    assert {name.split()[0] for name in up} == {job["job_name"] for job in local["scrape_configs"]}
    print(f"\ntargets up at {demo.elapsed()}: {sorted(up)}")

    alerts = yaml.safe_load((REPO_ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    expected_alerts = {rule["alert"] for group in alerts["groups"] for rule in group["rules"] if "alert" in rule}
    groups = wait_for(lambda: (data := prometheus.api("/api/v1/rules")) and data["groups"], 30, "the rule groups")
    loaded = {rule["name"] for group in groups for rule in group["rules"] if rule["type"] == "alerting"}
    assert loaded == expected_alerts
    assert all(rule["health"] != "err" for group in groups for rule in group["rules"]), groups


def test_key_series_show_the_pipeline_at_work(prometheus: Prometheus, demo: DemoRun) -> None:
    found: dict[str, float] = {}
    for name, expression in KEY_SERIES.items():
        found[name] = wait_for(
            lambda expression=expression: (value := prometheus.scalar(expression)) is not None and value > 0 and value,
            timeout=90,
            what=f"a non-zero {expression}",
        )
    print(f"\nPrometheus figures at {demo.elapsed()}: {found}")
    assert found["scans ingested"] > 0 and found["parcels"] > 0


def test_both_workers_ingest_and_their_sum_is_the_total(prometheus: Prometheus, demo: DemoRun) -> None:
    ports = metrics_ports(demo.options)
    worker_instances = {f"127.0.0.1:{port}" for name, port in ports.items() if name.startswith("worker-")}
    assert len(worker_instances) == demo.options.workers == 2

    def split_at_one_instant() -> tuple[dict[str, float], float] | None:
        # Both queries at the same evaluation time see the same scraped samples.
        at = f"{time.time():.3f}"
        per_worker = {
            series["metric"]["instance"]: float(series["value"][1])
            for series in prometheus.query(WORKERS_INGESTED, time=at) or []
        }
        total = prometheus.scalar("sum(parcelstream_scans_ingested_total)", time=at)
        if set(per_worker) != worker_instances or min(per_worker.values()) <= 0 or total is None:
            return None
        return per_worker, total

    per_worker, total = wait_for(split_at_one_instant, timeout=90, what="scans ingested by both workers")
    print(f"\nscans ingested per worker process at {demo.elapsed()}: {per_worker}, sum() of all processes: {total}")
    # Each worker process has its own /metrics: the dashboards' total is the sum over the processes.
    assert sum(per_worker.values()) == total
