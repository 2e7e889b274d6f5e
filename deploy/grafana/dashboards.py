"""Grafana dashboards as code (grafana-foundation-sdk): the hub overview, the SLA board, the
carrier feeds and the hub control room, built from the metrics of docs/metrics.md (and, for the
movement board, the tracking service's operations API through the Infinity data source).

``python -m deploy.grafana.dashboards`` writes ``deploy/grafana/dashboards/<uid>.json``, which
Grafana loads through ``deploy/grafana/provisioning/dashboards/parcelstream.yaml``; ``--check``
only reports drift between the checked-in JSON and this code. The output is deterministic
(sorted keys, fixed uids and panel ids) so a regeneration that changes nothing leaves no diff.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from grafana_foundation_sdk.builders import bargauge, prometheus, stat, table, timeseries
from grafana_foundation_sdk.builders.common import ReduceDataOptions, VizLegendOptions
from grafana_foundation_sdk.builders.dashboard import Dashboard, QueryVariable, Row, ThresholdsConfig
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import LegendDisplayMode, LegendPlacement, VizOrientation
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

#: The datasource uid provisioned by deploy/grafana/provisioning/datasources/prometheus.yaml.
DATASOURCE_UID = "parcelstream-prometheus"
DATASOURCE = DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
#: The Infinity JSON data source (plugin yesoreyeram-infinity-datasource) provisioned by
#: deploy/grafana/provisioning/datasources/operations-api.yaml: it sends the operations key.
OPERATIONS_API_UID = "parcelstream-operations-api"
OPERATIONS_API = DataSourceRef(type_val="yesoreyeram-infinity-datasource", uid=OPERATIONS_API_UID)
#: Where Grafana reaches the tracking service (the compose service name).
OPERATIONS_API_URL = "http://tracking:8080/v1/operations/movements"
OUTPUT_DIR = Path(__file__).parent / "dashboards"
TAGS = ["parcelstream"]
RATE = "$__rate_interval"

# Last value and peak next to each series: what an operator reads first.
_LEGEND = (
    VizLegendOptions()
    .display_mode(LegendDisplayMode.TABLE)
    .placement(LegendPlacement.BOTTOM)
    .show_legend(True)
    .calcs(["lastNotNull", "max"])
)
_LAST_VALUE = ReduceDataOptions().calcs(["lastNotNull"]).values(False)

AnyPanel = timeseries.Panel | stat.Panel | bargauge.Panel | table.Panel


def _query(expr: str, legend: str = "", ref_id: str = "A") -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).ref_id(ref_id).datasource(DATASOURCE)
    return query.legend_format(legend) if legend else query


def _instant_table_query(expr: str, ref_id: str = "A") -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).ref_id(ref_id).datasource(DATASOURCE)
    return query.instant().format(PromQueryFormat.TABLE)


def _thresholds(*steps: tuple[float | None, str]) -> ThresholdsConfig:
    return ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps([Threshold(value=v, color=c) for v, c in steps])


def _graph(title: str, description: str, unit: str, *queries: prometheus.Dataquery) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).description(description).unit(unit).min(0).datasource(DATASOURCE)
    panel = panel.fill_opacity(10).line_width(1).height(8).span(12).legend(_LEGEND)
    for query in queries:
        panel = panel.with_target(query)
    return panel


def _stat(title: str, description: str, unit: str, query: prometheus.Dataquery, thresholds: ThresholdsConfig) -> Any:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(DATASOURCE)
        .with_target(query)
        .thresholds(thresholds)
        .reduce_options(_LAST_VALUE)
        .height(4)
        .span(6)
    )


def _numbered(board: Dashboard, layout: list[tuple[str, list[AnyPanel]]]) -> Dashboard:
    """Add rows and their panels with ids in layout order, so ids never change between runs."""
    panel_id = 1
    for row_title, panels in layout:
        board = board.with_row(Row(row_title).id(panel_id))
        panel_id += 1
        for panel in panels:
            board = board.with_panel(panel.id(panel_id))
            panel_id += 1
    return board


def _dashboard(uid: str, title: str, description: str) -> Dashboard:
    return (
        Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .time("now-6h", "now")
        .refresh("30s")
        .timezone("utc")
    )


def hub_overview() -> Dashboard:
    throughput = [
        _graph(
            "Scans published per source",
            "Scans the broker acknowledged from carriers and the gateway (producers).",
            "cps",
            _query(f"sum by (source) (rate(parcelstream_scans_published_total[{RATE}]))", "{{source}}"),
        ),
        _graph(
            "Scans ingested per source",
            "Scans the stream-processor workers applied or fanned out to the parcels of a unit.",
            "cps",
            _query(f"sum by (source) (rate(parcelstream_scans_ingested_total[{RATE}]))", "{{source}}"),
        ),
        _graph(
            "Status updates per status",
            "Customer-visible status changes the workers emitted.",
            "cps",
            _query(f"sum by (status) (rate(parcelstream_status_updates_total[{RATE}]))", "{{status}}"),
        ),
        bargauge.Panel()
        .title("Parcels per status")
        .description("Parcels in the read model per current status (projector).")
        .unit("short")
        .min(0)
        .datasource(DATASOURCE)
        .with_target(_query("sum by (status) (parcelstream_parcels)", "{{status}}"))
        .reduce_options(_LAST_VALUE)
        .orientation(VizOrientation.HORIZONTAL)
        .height(8)
        .span(12),
    ]
    lag = [
        _graph(
            "Consumer lag per group and topic",
            "Messages behind the end of the partitions, summed per consumer group and topic. "
            "A line that keeps rising means the stage cannot keep up: add workers (≤ partitions).",
            "short",
            _query("sum by (group, topic) (parcelstream_consumer_lag)", "{{group}} {{topic}}"),
        ),
        _graph(
            "Event-time lag percentiles",
            "Wall time of processing minus the scan's event time, per stage. Includes carriers' own "
            "delays (offline scanners, manifests uploaded after landing), not only the pipeline's.",
            "s",
            *(
                _query(
                    f"histogram_quantile({quantile}, sum by (le, stage) "
                    f"(rate(parcelstream_event_time_lag_seconds_bucket[{RATE}])))",
                    f"p{int(quantile * 100)} {{{{stage}}}}",
                    ref_id,
                )
                for quantile, ref_id in ((0.5, "A"), (0.95, "B"), (0.99, "C"))
            ),
        ),
    ]
    health = [
        _graph(
            "Dead letters per stage and reason",
            "Records sent to the dead-letter topic. Each has a reason_code and a human reason in the "
            "DeadLetter record: read the topic to see which input was refused.",
            "cps",
            _query(
                f"sum by (stage, reason_code) (rate(parcelstream_dead_letters_total[{RATE}]))",
                "{{stage}} {{reason_code}}",
            ),
        ),
        _graph(
            "Stage processes running",
            "parcelstream_worker_up per stage (1 per process in its main loop) and the scrape targets up.",
            "short",
            _query("sum by (stage) (parcelstream_worker_up)", "{{stage}}", "A"),
            _query('sum by (job) (up{job=~"parcelstream-.*"})', "targets up {{job}}", "B"),
        ),
    ]
    board = _dashboard(
        "parcelstream-hub-overview",
        "parcelstream / Hub overview",
        "Throughput, parcels per status, lag and dead letters of the whole pipeline.",
    )
    return _numbered(board, [("Throughput and parcels", throughput), ("Lag", lag), ("Errors and health", health)])


def sla_board() -> Dashboard:
    selector = 'rule=~"$rule", route=~"$route", carrier=~"$carrier"'

    def sla_count(kind: str) -> prometheus.Dataquery:
        return _query(f'sum(increase(parcelstream_sla_events_total{{kind="{kind}", {selector}}}[$__range]))')

    summary = [
        _stat(
            "Breaches in range",
            "SLA breaches in the dashboard's time range (each fires once per parcel and rule).",
            "short",
            sla_count("breach"),
            _thresholds((None, "green"), (1, "orange"), (100, "red")),
        ),
        _stat(
            "At-risk warnings in range",
            "Parcels warned before a deadline in the time range.",
            "short",
            sla_count("at_risk"),
            _thresholds((None, "green"), (1, "yellow"), (500, "orange")),
        ),
        _stat(
            "Recovered in range",
            "At-risk parcels that met their deadline after all.",
            "short",
            sla_count("recovered"),
            _thresholds((None, "text")),
        ),
        _stat(
            "Breaches per at-risk warning",
            "Breaches divided by at-risk warnings in the range: how often a warning came too late to act.",
            "percentunit",
            _query(
                f'sum(increase(parcelstream_sla_events_total{{kind="breach", {selector}}}[$__range])) / '
                f'sum(increase(parcelstream_sla_events_total{{kind="at_risk", {selector}}}[$__range]))'
            ),
            _thresholds((None, "green"), (0.25, "orange"), (0.5, "red")),
        ),
    ]
    per_rule = [
        _graph(
            f"{title} per rule",
            f"SLA {kind} events per rule (schemas/sla.py: promise, customs_clearance, hub_dwell, "
            "last_mile_delivery, silence).",
            "short",
            _query(
                f'sum by (rule) (increase(parcelstream_sla_events_total{{kind="{kind}", {selector}}}[{RATE}]))',
                "{{rule}}",
            ),
        )
        for title, kind in (("Breaches", "breach"), ("At-risk warnings", "at_risk"))
    ]
    per_route = [
        _graph(
            "Breaches per route",
            "SLA breaches per route: a lane with a rising line points at its carriers (see Per carrier).",
            "short",
            _query(
                f'sum by (route) (increase(parcelstream_sla_events_total{{kind="breach", {selector}}}[{RATE}]))',
                "{{route}}",
            ),
        ),
        table.Panel()
        .title("SLA events per route and rule in range")
        .description("At-risk, breach and recovered counts per route and rule over the dashboard's range.")
        .datasource(DATASOURCE)
        .show_header(True)
        .with_target(
            _instant_table_query(
                f"sum by (route, rule, kind) (increase(parcelstream_sla_events_total{{{selector}}}[$__range]))"
            )
        )
        .height(8)
        .span(12),
    ]
    per_carrier = [
        _graph(
            "Breaches per carrier",
            "SLA breaches per carrier holding the parcel when the breach fired (its current scan's carrier): "
            "unknown = no carrier on the scan, other = not a carrier code or beyond the worker's carrier limit.",
            "short",
            _query(
                f'sum by (carrier) (increase(parcelstream_sla_events_total{{kind="breach", {selector}}}[{RATE}]))',
                "{{carrier}}",
            ),
        ),
        table.Panel()
        .title("SLA events per carrier and rule in range")
        .description("At-risk, breach and recovered counts per carrier and rule over the dashboard's range.")
        .datasource(DATASOURCE)
        .show_header(True)
        .with_target(
            _instant_table_query(
                f"sum by (carrier, rule, kind) (increase(parcelstream_sla_events_total{{{selector}}}[$__range]))"
            )
        )
        .height(8)
        .span(12),
    ]
    board = _dashboard(
        "parcelstream-sla-board",
        "parcelstream / SLA board",
        "SLA at-risk warnings, breaches and recoveries per rule, route and carrier.",
    )
    for name in ("rule", "route", "carrier"):
        board = board.with_variable(
            QueryVariable(name)
            .label(name)
            .datasource(DATASOURCE)
            .query(f"label_values(parcelstream_sla_events_total, {name})")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
        )
    # Per carrier comes last so that the earlier panels keep their ids.
    return _numbered(
        board,
        [("Summary", summary), ("Per rule", per_rule), ("Per route", per_route), ("Per carrier", per_carrier)],
    )


def carrier_feeds() -> Dashboard:
    silence = "time() - max by (carrier, source) (parcelstream_carrier_last_scan_timestamp_seconds)"
    feeds = [
        table.Panel()
        .title("Time since last scan per carrier feed")
        .description(
            "Seconds since each carrier's last accepted scan. Orange after 30 min, red after 1 h "
            "(the ParcelstreamCarrierFeedSilent alert)."
        )
        .unit("s")
        .datasource(DATASOURCE)
        .show_header(True)
        .with_target(_instant_table_query(silence))
        .thresholds(_thresholds((None, "green"), (1800, "orange"), (3600, "red")))
        .height(8)
        .span(12),
        _graph(
            "Time since last scan over time",
            "The same silence per carrier feed over time: a saw-tooth is a healthy feed, a ramp a silent one.",
            "s",
            _query(silence, "{{carrier}} {{source}}"),
        ),
    ]
    ingest = [
        _graph(
            "Ingest requests per carrier and status code",
            "HTTP ingest requests the gateway answered, per carrier and HTTP status code.",
            "reqps",
            _query(
                f"sum by (carrier, status_code) (rate(parcelstream_ingest_requests_total[{RATE}]))",
                "{{carrier}} {{status_code}}",
            ),
        ),
        _graph(
            "Ingest error ratio per carrier",
            "Share of ingest requests answered 4xx (the carrier's input or credentials) or 5xx (ours).",
            "percentunit",
            _query(
                f'sum by (carrier) (rate(parcelstream_ingest_requests_total{{status_code=~"4..|5.."}}[{RATE}])) / '
                f"sum by (carrier) (rate(parcelstream_ingest_requests_total[{RATE}]))",
                "{{carrier}}",
            ),
        ),
        _graph(
            "Publish failures per reason",
            "Records the broker did not acknowledge (producers): the carrier's data was not accepted.",
            "cps",
            _query(f"sum by (reason_code) (rate(parcelstream_publish_failures_total[{RATE}]))", "{{reason_code}}"),
        ),
        _graph(
            "Dead letters per stage and reason",
            "Records sent to the dead-letter topic; a carrier sending a new format shows here first.",
            "cps",
            _query(
                f"sum by (stage, reason_code) (rate(parcelstream_dead_letters_total[{RATE}]))",
                "{{stage}} {{reason_code}}",
            ),
        ),
        _graph(
            "Scans published per source and code",
            "Normalised scan codes per source: a code that stops appearing hints at a changed carrier code table.",
            "cps",
            _query(f"sum by (source, code) (rate(parcelstream_scans_published_total[{RATE}]))", "{{source}} {{code}}"),
        ),
    ]
    board = _dashboard(
        "parcelstream-carrier-feeds",
        "parcelstream / Carrier feeds",
        "Silent carrier feeds, ingest errors, publish failures and dead letters.",
    )
    return _numbered(board, [("Silent feeds", feeds), ("Ingest and errors", ingest)])


class InfinityQuery:
    """A target of the Infinity data source (no builder in the SDK): JSON from a URL as a table."""

    def __init__(self, url: str, root_selector: str, columns: list[tuple[str, str, str]], ref_id: str = "A") -> None:
        self.url = url
        self.root_selector = root_selector
        self.columns = columns
        self.ref_id = ref_id

    def build(self) -> InfinityQuery:
        return self

    def to_json(self) -> dict[str, Any]:
        return {
            "datasource": OPERATIONS_API.to_json(),
            "refId": self.ref_id,
            "type": "json",
            "source": "url",
            "parser": "backend",
            "format": "table",
            "url": self.url,
            "url_options": {"method": "GET", "data": ""},
            "root_selector": self.root_selector,
            "columns": [{"selector": selector, "text": text, "type": kind} for selector, text, kind in self.columns],
        }


#: Backlog gauges: every projector exports the same values (one Redis), so take the max over them.
_BACKLOG = "max by (stage) (sum by (stage, instance) (parcelstream_backlog_parcels))"
_BOARD_COLUMNS: list[tuple[str, str, str]] = [
    ("kind", "kind", "string"),
    ("movement_id", "movement", "string"),
    ("carrier", "carrier", "string"),
    ("lane", "lane", "string"),
    ("state", "state", "string"),
    ("departed_ms", "departed", "timestamp_epoch"),
    ("arrived_ms", "arrived", "timestamp_epoch"),
    ("age_seconds", "age (s)", "number"),
    ("expected", "expected", "number"),
    ("arrived", "arrived parcels", "number"),
    ("in_import_customs", "in customs", "number"),
    ("held", "held", "number"),
    ("cleared", "cleared", "number"),
    ("sorted", "sorted", "number"),
    ("handed_to_last_mile", "last mile", "number"),
    ("delivered", "delivered", "number"),
    ("exceptions", "exceptions", "number"),
]


def hub_control_room() -> Dashboard:
    def dwell(quantile: float) -> prometheus.Dataquery:
        return _query(
            f"histogram_quantile({quantile}, sum by (le, stage) "
            f"(rate(parcelstream_stage_dwell_seconds_bucket[{RATE}])))",
            "{{stage}}",
        )

    backlog = [
        _graph(
            "Parcels per stage",
            "Parcels now in each hub stage (export customs, linehaul, import customs, hub, last mile), from "
            "the read model's stage indexes.",
            "short",
            _query(_BACKLOG, "{{stage}}"),
        ),
        _graph(
            "Longest wait per stage",
            "How long the longest-waiting parcel of each stage has been in it, in event time. The sort "
            "backlog alert fires when the hub's passes 12 h.",
            "s",
            _query("max by (stage) (parcelstream_backlog_oldest_seconds)", "{{stage}}"),
        ),
        table.Panel()
        .title("Backlog per stage and route")
        .description("Parcels now in each stage, per route (bounded: other = beyond 300 routes or free text).")
        .datasource(DATASOURCE)
        .show_header(True)
        .with_target(_instant_table_query("max by (stage, route) (parcelstream_backlog_parcels) > 0"))
        .height(8)
        .span(24),
    ]
    dwell_panels = [
        _graph(
            "Dwell p90 per stage",
            "90th percentile of the time parcels spent in each stage, observed when they leave it (event "
            "time). The customs dwell alert fires when import customs passes 24 h for 30 minutes.",
            "s",
            dwell(0.9),
        ),
        _graph("Dwell p50 per stage", "Median time parcels spent in each stage when they left it.", "s", dwell(0.5)),
    ]
    transit = [
        _graph(
            "Transit p90 per route and service level",
            "90th percentile of order-to-delivery time of the parcels delivered, per route and service level.",
            "s",
            _query(
                "histogram_quantile(0.9, sum by (le, route, service_level) "
                f"(rate(parcelstream_transit_seconds_bucket[{RATE}])))",
                "{{route}} {{service_level}}",
            ),
        ),
        table.Panel()
        .title("Deliveries and mean transit in range")
        .description("Parcels delivered per route and service level over the range, and their mean transit (s).")
        .datasource(DATASOURCE)
        .show_header(True)
        .with_target(
            _instant_table_query(
                "sum by (route, service_level) (increase(parcelstream_transit_seconds_count[$__range]))", "A"
            )
        )
        .with_target(
            _instant_table_query(
                "sum by (route, service_level) (increase(parcelstream_transit_seconds_sum[$__range])) / "
                "sum by (route, service_level) (increase(parcelstream_transit_seconds_count[$__range]))",
                "B",
            )
        )
        .height(8)
        .span(12),
    ]
    movements = [
        table.Panel()
        .title("Inbound movements")
        .description(
            "Flights, block trains and sea containers, newest first, with their parcels' progress: the "
            "tracking service's operations API (/v1/operations/movements) through the Infinity data source."
        )
        .datasource(OPERATIONS_API)
        .show_header(True)
        .with_target(InfinityQuery(f"{OPERATIONS_API_URL}?limit=50", "movements", _BOARD_COLUMNS))  # type: ignore[arg-type]
        .height(12)
        .span(24),
    ]
    board = _dashboard(
        "parcelstream-hub-control-room",
        "parcelstream / Hub control room",
        "Backlog and dwell per hub stage, transit per route and service level, and the inbound movement board.",
    )
    return _numbered(
        board,
        [("Backlog", backlog), ("Dwell per stage", dwell_panels), ("Transit", transit), ("Movements", movements)],
    )


DASHBOARDS: dict[str, Callable[[], Dashboard]] = {
    "parcelstream-hub-overview": hub_overview,
    "parcelstream-sla-board": sla_board,
    "parcelstream-carrier-feeds": carrier_feeds,
    "parcelstream-hub-control-room": hub_control_room,
}


def render(builder: Dashboard) -> str:
    """The dashboard's JSON, deterministic: sorted keys, two-space indent, final newline."""
    return json.dumps(builder.build(), cls=JSONEncoder, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def rendered() -> dict[str, str]:
    """File name → JSON text of every dashboard."""
    return {f"{uid}.json": render(build()) for uid, build in DASHBOARDS.items()}


def drift(output_dir: Path = OUTPUT_DIR) -> list[str]:
    """Names of the dashboard files that are missing or differ from what this code generates."""
    return [
        name
        for name, text in rendered().items()
        if not (output_dir / name).is_file() or (output_dir / name).read_text(encoding="utf-8") != text
    ]


def main(
    output_dir: Annotated[Path, typer.Option(help="Directory the dashboard JSON files are written to.")] = OUTPUT_DIR,
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 if the files differ from the code.")
    ] = False,
) -> None:
    """Generate the Grafana dashboards (JSON) from code."""
    if check:
        stale = drift(output_dir)
        if stale:
            typer.echo(f"dashboards out of date: {', '.join(stale)} (run: python -m deploy.grafana.dashboards)")
            raise typer.Exit(1)
        typer.echo(f"{len(DASHBOARDS)} dashboards up to date in {output_dir}")
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    for name, text in rendered().items():
        (output_dir / name).write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output_dir / name}")
    typer.echo(f"{len(DASHBOARDS)} dashboards written")


if __name__ == "__main__":
    typer.run(main)
