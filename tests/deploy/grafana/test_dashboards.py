"""The dashboards as code: checked-in JSON equals the generator's output, and every query uses
metrics of the catalog (docs/metrics.md) and the provisioned datasource."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from deploy.grafana import dashboards

METRIC = re.compile(r"\bparcelstream_\w+")
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")


def _panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def _exprs(board: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in _panels(board) for target in panel.get("targets", []) if "expr" in target]


def _metric_name(series: str, catalog: dict[str, str]) -> str:
    for suffix in HISTOGRAM_SERIES:
        base = series.removesuffix(suffix)
        if base != series and catalog.get(base) == "histogram":
            return base
    return series


def test_checked_in_json_has_no_drift_from_the_generator() -> None:
    assert dashboards.drift() == [], "run: python -m deploy.grafana.dashboards"


def test_generation_is_deterministic() -> None:
    assert dashboards.rendered() == dashboards.rendered()


def test_check_flag_reports_drift_and_writing_fixes_it(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "deploy.grafana.dashboards", "--output-dir", str(tmp_path)]
    written = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert written.returncode == 0, written.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(dashboards.rendered())
    clean = subprocess.run([*command, "--check"], capture_output=True, text=True, timeout=120, check=False)
    assert clean.returncode == 0, clean.stdout + clean.stderr

    (tmp_path / "parcelstream-sla-board.json").write_text("{}\n", encoding="utf-8")
    stale = subprocess.run([*command, "--check"], capture_output=True, text=True, timeout=120, check=False)
    assert stale.returncode == 1
    assert "parcelstream-sla-board.json" in stale.stdout
    assert "Traceback" not in stale.stderr


def test_every_query_uses_catalog_metrics(metric_catalog: dict[str, str]) -> None:
    for name, text in dashboards.rendered().items():
        for expr in _exprs(json.loads(text)):
            for series in METRIC.findall(expr):
                assert _metric_name(series, metric_catalog) in metric_catalog, f"{name}: {series} in {expr}"


def test_each_dashboard_covers_its_metrics() -> None:
    expected = {
        "parcelstream-hub-overview.json": {
            "parcelstream_scans_published_total",
            "parcelstream_scans_ingested_total",
            "parcelstream_parcels",
            "parcelstream_consumer_lag",
            "parcelstream_event_time_lag_seconds_bucket",
            "parcelstream_dead_letters_total",
        },
        "parcelstream-sla-board.json": {"parcelstream_sla_events_total"},
        "parcelstream-hub-control-room.json": {
            "parcelstream_backlog_parcels",
            "parcelstream_backlog_oldest_seconds",
            "parcelstream_stage_dwell_seconds_bucket",
            "parcelstream_transit_seconds_bucket",
        },
        "parcelstream-carrier-feeds.json": {
            "parcelstream_carrier_last_scan_timestamp_seconds",
            "parcelstream_ingest_requests_total",
            "parcelstream_publish_failures_total",
            "parcelstream_dead_letters_total",
        },
    }
    rendered = dashboards.rendered()
    assert set(rendered) == set(expected)
    for name, metrics in expected.items():
        used = {series for expr in _exprs(json.loads(rendered[name])) for series in METRIC.findall(expr)}
        assert metrics <= used, f"{name} misses {metrics - used}"


def test_sla_board_filters_on_and_splits_by_carrier() -> None:
    board = json.loads(dashboards.rendered()["parcelstream-sla-board.json"])
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert set(variables) == {"rule", "route", "carrier"}
    assert variables["carrier"]["query"] == "label_values(parcelstream_sla_events_total, carrier)"
    exprs = _exprs(board)
    assert all('carrier=~"$carrier"' in expr for expr in exprs)
    by_carrier = {panel["title"]: panel for panel in _panels(board)}["Breaches per carrier"]
    (target,) = by_carrier["targets"]
    assert target["expr"].startswith("sum by (carrier) (") and 'kind="breach"' in target["expr"]
    assert target["legendFormat"] == "{{carrier}}"


def test_uids_and_panel_ids_are_unique_and_layout_fits_the_grid() -> None:
    boards = [json.loads(text) for text in dashboards.rendered().values()]
    uids = [board["uid"] for board in boards]
    assert len(set(uids)) == len(uids)
    for board in boards:
        panels = list(_panels(board))
        ids = [panel["id"] for panel in panels]
        assert len(set(ids)) == len(ids), board["uid"]
        for panel in panels:
            position = panel["gridPos"]
            assert position["x"] + position["w"] <= 24, (board["uid"], panel["title"])
            assert panel["title"]


def _provisioned_datasources(repo_root: Path) -> dict[str, dict[str, Any]]:
    return {
        source["uid"]: source
        for path in sorted((repo_root / "deploy/grafana/provisioning/datasources").glob("*.yaml"))
        for source in yaml.safe_load(path.read_text(encoding="utf-8"))["datasources"]
    }


def test_panels_use_the_provisioned_datasource(repo_root: Path) -> None:
    provisioned_uids = set(_provisioned_datasources(repo_root))
    for text in dashboards.rendered().values():
        board = json.loads(text)
        for panel in _panels(board):
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] in provisioned_uids
            assert all(target["datasource"]["uid"] in provisioned_uids for target in panel["targets"])


def test_dashboard_provider_reads_the_folder_compose_mounts(repo_root: Path) -> None:
    provider = yaml.safe_load(
        (repo_root / "deploy/grafana/provisioning/dashboards/parcelstream.yaml").read_text(encoding="utf-8")
    )
    compose = yaml.safe_load((repo_root / "deploy/compose/docker-compose.yml").read_text(encoding="utf-8"))
    mounts = dict(volume.split(":")[:2][::-1] for volume in compose["services"]["grafana"]["volumes"])
    path = provider["providers"][0]["options"]["path"]
    assert mounts[path] == "../grafana/dashboards"
    assert (repo_root / "deploy/compose" / mounts[path]).resolve() == dashboards.OUTPUT_DIR.resolve()


def test_the_movement_board_reads_the_operations_api_through_the_provisioned_infinity_source(repo_root: Path) -> None:
    from consumers.tracking.operations import Movement

    source = _provisioned_datasources(repo_root)[dashboards.OPERATIONS_API_UID]
    assert source["type"] == "yesoreyeram-infinity-datasource"
    assert source["jsonData"]["httpHeaderName1"] == "X-Operations-Key"
    assert source["secureJsonData"]["httpHeaderValue1"] == "${PARCELSTREAM_OPERATIONS_KEY}"
    assert dashboards.OPERATIONS_API_URL.startswith(tuple(source["jsonData"]["allowedHosts"]))
    board = json.loads(dashboards.rendered()["parcelstream-hub-control-room.json"])
    (panel,) = [panel for panel in _panels(board) if panel["title"] == "Inbound movements"]
    (target,) = panel["targets"]
    assert target["url"].startswith(dashboards.OPERATIONS_API_URL)
    assert {column["selector"] for column in target["columns"]} <= set(Movement.model_fields)
    compose = yaml.safe_load((repo_root / "deploy/compose/docker-compose.yml").read_text(encoding="utf-8"))
    grafana = compose["services"]["grafana"]["environment"]
    assert re.fullmatch(r"yesoreyeram-infinity-datasource \d+\.\d+\.\d+", grafana["GF_INSTALL_PLUGINS"])
    tracking = compose["services"]["tracking"]["environment"]
    assert grafana["PARCELSTREAM_OPERATIONS_KEY"] == tracking["PARCELSTREAM_OPERATIONS_KEY"]
