"""Carrier-side commands: ``parcelstream publish`` and ``parcelstream simulate``.

A thin shell around ``producers.publish``: flags and environment, progress, issues on stderr, a
summary table and exit codes.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from producers.formats import FORMATS, ParseIssue

if TYPE_CHECKING:
    from producers.publish import PublishSummary
    from producers.publisher import Publisher

app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
err_console = Console(stderr=True, highlight=False)
out_console = Console(highlight=False)

#: Files with at least this many lines get a progress bar (on a terminal).
PROGRESS_THRESHOLD: Final = 1000
#: Delivery failures listed one by one before the rest are only counted.
MAX_LISTED_FAILURES: Final = 50
#: Extra seconds the final flush waits beyond --timeout (the per-record delivery timeout).
FLUSH_MARGIN_S: Final = 5.0

PUBLISH_HELP: Final = (
    "Publish parcelstream JSON Lines / CSV scan files, or carriers' files, to the scans and manifests topics.\n\n"
    "Every invalid line is reported on stderr (file:line, field, what is wrong) and sent to the dead-letter "
    "topic with its reason; the other lines are published."
)

PublishFormat = StrEnum("PublishFormat", {name: name for name in FORMATS})  # type: ignore[misc]


class _RichProgress:
    """A progress bar per large file; small files and non-terminals get none."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID | None = None

    def start_file(self, name: str, total: int) -> None:
        self.task = self.progress.add_task(name, total=total) if total >= PROGRESS_THRESHOLD else None

    def advance(self, count: int = 1) -> None:
        if self.task is not None:
            self.progress.advance(self.task, count)


def _print_issue(issue: ParseIssue) -> None:
    message = f"[yellow]dead-lettered[/yellow] {escape(issue.reference)} {escape(issue.field)}: {escape(issue.message)}"
    err_console.print(message, soft_wrap=True)


def _summary_table(summary: PublishSummary, publisher: Publisher) -> Table:
    table = Table(title="publish summary", title_justify="left")
    table.add_column("", style="bold")
    table.add_column("records", justify="right")
    table.add_row("files", str(summary.files))
    table.add_row("records read", str(summary.records_read))
    for topic in (publisher.topics.scans, publisher.topics.manifests):
        table.add_row(f"published to {topic}", str(summary.published.get(topic, 0)))
    table.add_row(f"dead-lettered to {publisher.topics.dead_letters}", str(summary.dead_lettered))
    table.add_row("failed delivery", str(len(summary.failures)), style="red" if summary.failures else None)
    return table


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    return typer.Exit(1)


@app.command(
    "publish",
    help=PUBLISH_HELP,
    epilog=(
        "Exit codes: 0 every record published; 1 a record was not acknowledged by the broker (they are "
        "listed), or nothing could be published (broker unreachable, missing file or topic); 2 some "
        "input lines were invalid and went to the dead-letter topic, everything else was published "
        "(2 is also the exit code of command-line usage errors)."
    ),
)
def publish(
    files: Annotated[list[Path], typer.Argument(help="Scan files to publish.", metavar="FILE", show_default=False)],
    format_name: Annotated[
        PublishFormat | None,
        typer.Option(
            "--format",
            "-f",
            help="Format of the files. Default: from the extension (.jsonl/.ndjson → jsonl, .csv → csv).",
            show_default=False,
        ),
    ] = None,
    carrier: Annotated[
        str | None,
        typer.Option(help="Carrier code every record must have; records of another carrier are dead-lettered."),
    ] = None,
    bootstrap_servers: Annotated[
        str | None,
        typer.Option(
            help="Kafka bootstrap servers (host:port,...). Default: $PARCELSTREAM_BOOTSTRAP_SERVERS or 127.0.0.1:9092.",
            show_default=False,
        ),
    ] = None,
    topic_prefix: Annotated[
        str | None,
        typer.Option(
            help="Topic name prefix (<prefix>.scans, ...). Default: $PARCELSTREAM_TOPIC_PREFIX or parcelstream.",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            min=0.1,
            help="Seconds to wait for the broker to answer and to acknowledge each record. "
            "Default: $PARCELSTREAM_PUBLISH_TIMEOUT or 30.",
            show_default=False,
        ),
    ] = None,
    max_future: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            help="Seconds an event time may lie ahead of now; later records are dead-lettered "
            "(event_time_out_of_range). Default: $PARCELSTREAM_MAX_FUTURE or 86400 (1 day).",
            show_default=False,
        ),
    ] = None,
    max_age: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            help="Seconds an event time may lie behind now; older records are dead-lettered "
            "(event_time_out_of_range). Default: $PARCELSTREAM_MAX_AGE or 31536000 (365 days).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Publish scan files; the command's help text is PUBLISH_HELP."""
    # Imported here: the root CLI mounts every stage in one process, and each stage registers its
    # own Prometheus metrics (producers.metrics is imported by producers.publish).
    from producers.publish import PublishSettings, PublishSetupError, check_broker, publish_files, resolve_inputs
    from producers.publisher import Publisher
    from schemas.event_time import EventTimeSettings

    flags = {"bootstrap_servers": bootstrap_servers, "topic_prefix": topic_prefix, "publish_timeout": timeout}
    bounds = {"max_future": max_future, "max_age": max_age}
    try:
        # Flags given on the command line win over PARCELSTREAM_* variables.
        settings = PublishSettings(**{name: value for name, value in flags.items() if value is not None})
        event_times = EventTimeSettings(**{name: value for name, value in bounds.items() if value is not None})
    except ValidationError as error:
        first = error.errors()[0]
        raise _fail(f"invalid PARCELSTREAM_{str(first['loc'][0]).upper()}: {first['msg']}") from None
    format_value = format_name.value if format_name is not None else None
    try:
        resolve_inputs(files, format_value)  # local problems first: they need no broker
        check_broker(settings.bootstrap_servers, settings.topics, settings.publish_timeout)
    except PublishSetupError as error:
        raise _fail(str(error)) from None

    # Each record gets a delivery report within the timeout, so none is left unaccounted for.
    delivery_timeout = {"message.timeout.ms": int(settings.publish_timeout * 1000)}
    publisher = Publisher(settings.bootstrap_servers, settings.topics, **delivery_timeout)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=not err_console.is_terminal,
    )
    try:
        with progress:
            summary = publish_files(
                files,
                format_value,
                publisher,
                carrier=carrier,
                flush_timeout=settings.publish_timeout + FLUSH_MARGIN_S,
                on_issue=_print_issue,
                progress=_RichProgress(progress),
                event_times=event_times,
            )
    except PublishSetupError as error:
        raise _fail(str(error)) from None

    out_console.print(_summary_table(summary, publisher))
    if summary.failures:
        for failure in summary.failures[:MAX_LISTED_FAILURES]:
            err_console.print(
                f"[red]not published[/red] {escape(failure.reference)} → {failure.topic}: {escape(failure.error)}",
                soft_wrap=True,
            )
        if len(summary.failures) > MAX_LISTED_FAILURES:
            err_console.print(f"... and {len(summary.failures) - MAX_LISTED_FAILURES} more not published")
    raise typer.Exit(summary.exit_code)


def _mount_simulator() -> None:
    # The simulator's command imports its runner (and the metrics) only when it runs.
    from producers.simulator.cli import simulate

    app.command("simulate")(simulate)


_mount_simulator()
