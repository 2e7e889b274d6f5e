"""Publish scan files: parse each file with its format's parser, publish the good records, dead-letter
every issue, and account for what the broker acknowledged.

``publish_files`` is the function behind ``parcelstream publish``; the CLI only adds flags, output
and exit codes. A record counts as published only once the broker acknowledged it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from producers import metrics
from producers.event_times import record_bytes, split_by_event_time
from producers.formats import FORMATS, FormatError, ParsedRecord, ParseIssue, Parser, ParseResult, parser_for
from producers.publisher import DeliveryFailure, Publisher
from schemas.codec import EncodeError
from schemas.event_time import EventTimeSettings
from schemas.settings import PipelineSettings
from schemas.topics import TopicNames

FORMAT_BY_EXTENSION: Final[dict[str, str]] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
#: Dead-letter payloads stay under Kafka's default 1 MB message limit.
MAX_DEAD_LETTER_PAYLOAD: Final = 900_000
#: Reference the publisher gives records whose delivery report never came (see Publisher.flush).
PENDING_REFERENCE: Final = "(pending)"


class PublishSettings(PipelineSettings):
    """``PARCELSTREAM_*`` settings of ``parcelstream publish``."""

    publish_timeout: float = 30.0
    """Seconds to wait for the broker: to answer at start, and to acknowledge each record."""


class PublishSetupError(RuntimeError):
    """A problem found before anything is published (one line: what is wrong and what to do)."""


class PublishProgress(Protocol):
    def start_file(self, name: str, total: int) -> None: ...

    def advance(self, count: int = 1) -> None: ...


@dataclass(frozen=True)
class InputFile:
    path: Path
    format: str
    parser: Parser


@dataclass
class PublishSummary:
    """What happened to every line of the input files."""

    files: int = 0
    records_read: int = 0  # lines that held a record, good or bad
    published: dict[str, int] = field(default_factory=dict)  # topic → records acknowledged
    dead_lettered: int = 0  # dead letters acknowledged
    issues: list[ParseIssue] = field(default_factory=list)
    failures: list[DeliveryFailure] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0: everything published; 1: some record not acknowledged; 2: input issues dead-lettered."""
        if self.failures:
            return 1
        return 2 if self.issues else 0


def format_for_path(path: Path, format_name: str | None = None) -> str:
    """The given format, or the one the file's extension names (.jsonl/.ndjson → jsonl, .csv → csv)."""
    if format_name is not None:
        if format_name not in FORMATS:
            raise PublishSetupError(f"unknown format {format_name!r}; known: {', '.join(FORMATS)}")
        return format_name
    inferred = FORMAT_BY_EXTENSION.get(path.suffix.lower())
    if inferred is None:
        raise PublishSetupError(f"{path}: cannot tell the format from the extension; pass --format")
    return inferred


def resolve_inputs(paths: Iterable[Path], format_name: str | None = None) -> list[InputFile]:
    """Check every file and format before anything is published."""
    inputs = []
    for path in paths:
        if not path.is_file():
            raise PublishSetupError(f"{path}: no such file")
        name = format_for_path(path, format_name)
        try:
            parser = parser_for(name)
        except ImportError as error:
            raise PublishSetupError(f"format {name!r} is not available in this installation ({error})") from None
        except FormatError as error:
            raise PublishSetupError(str(error)) from None
        inputs.append(InputFile(path, name, parser))
    return inputs


def check_broker(bootstrap_servers: str, topics: TopicNames, timeout: float) -> None:
    """Fail fast, in one line, when the broker does not answer or the topics do not exist."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0})
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException:
        raise PublishSetupError(
            f"the Kafka broker at {bootstrap_servers} did not answer within {timeout:g} s "
            "(set --bootstrap-servers or PARCELSTREAM_BOOTSTRAP_SERVERS)"
        ) from None
    missing = [name for name in (topics.scans, topics.manifests, topics.dead_letters) if name not in metadata.topics]
    if missing:
        raise PublishSetupError(
            f"topic(s) {', '.join(missing)} do not exist on {bootstrap_servers}: check --topic-prefix, "
            "or create the topics (`parcelstream dev up` does locally)"
        )


def dead_letter_reason(issues: Sequence[ParseIssue]) -> str:
    return "; ".join(f"{issue.reference} {issue.field}: {issue.message}" for issue in issues)


def _group_issues(issues: Iterable[ParseIssue]) -> list[list[ParseIssue]]:
    """One dead letter per bad input (a line, a message): its issues together, in order."""
    groups: dict[tuple[str, bytes], list[ParseIssue]] = {}
    for issue in issues:
        groups.setdefault((issue.reference, issue.raw), []).append(issue)
    return list(groups.values())


def _failure_reason_code(error: str) -> str:
    if "timed out" in error.lower():
        return "message_timeout"
    return "broker_error"


@dataclass
class _Sent:
    kind: str  # "scan", "manifest" or "dead_letter"
    reference: str
    labels: tuple[str, ...]  # the metric's labels
    carrier: str | None = None


class _FilePublisher:
    """Sends one run's records and dead letters, remembering what was sent for the accounting."""

    def __init__(self, publisher: Publisher, summary: PublishSummary, on_issue: Callable[[ParseIssue], None]) -> None:
        self.publisher = publisher
        self.summary = summary
        self.on_issue = on_issue
        self.sent: list[_Sent] = []

    def record(self, record: ParsedRecord) -> None:
        try:
            if record.kind == "scan":
                self.publisher.publish_scan(record.value, record.reference)
                labels: tuple[str, ...] = (record.value["source"], record.value["code"])
            else:
                self.publisher.publish_manifest(record.value, record.reference)
                labels = (record.value["unit_type"],)
        except EncodeError as error:
            # A parser let through a record that breaks the contract: it is bad input, not lost.
            self.issues(
                [ParseIssue(record.reference, "(schema)", str(error), record_bytes(record), "schema_violation")]
            )
            return
        except KafkaException as error:
            topic = self.publisher.topics.scans if record.kind == "scan" else self.publisher.topics.manifests
            self.summary.failures.append(DeliveryFailure(record.reference, topic, str(error)))
            metrics.PUBLISH_FAILURES.labels("produce_rejected").inc()
            return
        self.sent.append(_Sent(record.kind, record.reference, labels, record.value.get("carrier")))

    def issues(self, issues: Sequence[ParseIssue]) -> None:
        for issue in issues:
            self.summary.issues.append(issue)
            self.on_issue(issue)
        for group in _group_issues(issues):
            first = group[0]
            reason = dead_letter_reason(group)
            payload = first.raw
            if len(payload) > MAX_DEAD_LETTER_PAYLOAD:
                reason += f" (payload cut to the first {MAX_DEAD_LETTER_PAYLOAD} of {len(payload)} bytes)"
                payload = payload[:MAX_DEAD_LETTER_PAYLOAD]
            try:
                self.publisher.publish_dead_letter(
                    reason_code=first.reason_code, reason=reason, payload=payload, source_reference=first.reference
                )
            except KafkaException as error:
                failure = DeliveryFailure(first.reference, self.publisher.topics.dead_letters, str(error))
                self.summary.failures.append(failure)
                metrics.PUBLISH_FAILURES.labels("produce_rejected").inc()
                continue
            self.sent.append(_Sent("dead_letter", first.reference, (self.publisher.stage, first.reason_code)))

    def account(self, failures: list[DeliveryFailure], acknowledged: dict[str, int]) -> None:
        """Count what the broker acknowledged; metrics move only for acknowledged records."""
        self.summary.failures.extend(failures)
        for failure in failures:
            reason_code = "not_acknowledged" if failure.reference == PENDING_REFERENCE else None
            metrics.PUBLISH_FAILURES.labels(reason_code or _failure_reason_code(failure.error)).inc()
        dead_letters_topic = self.publisher.topics.dead_letters
        self.summary.dead_lettered += acknowledged.pop(dead_letters_topic, 0)
        for topic, count in acknowledged.items():
            self.summary.published[topic] = self.summary.published.get(topic, 0) + count
        if any(failure.reference == PENDING_REFERENCE for failure in failures):
            return  # which records were acknowledged is unknown: no per-record metrics
        failed = {failure.reference for failure in failures}
        now = time.time()
        for sent in self.sent:
            if sent.reference in failed:
                continue
            if sent.kind == "scan":
                source, _code = sent.labels
                metrics.SCANS_PUBLISHED.labels(*sent.labels).inc()
                metrics.CARRIER_LAST_SCAN.labels(sent.carrier, source).set(now)
            elif sent.kind == "manifest":
                metrics.MANIFESTS_PUBLISHED.labels(*sent.labels).inc()
            else:
                metrics.DEAD_LETTERS.labels(*sent.labels).inc()


def publish_files(
    paths: Iterable[Path],
    format_name: str | None,
    publisher: Publisher,
    *,
    carrier: str | None = None,
    flush_timeout: float = 35.0,
    on_issue: Callable[[ParseIssue], None] = lambda issue: None,
    progress: PublishProgress | None = None,
    event_times: EventTimeSettings | None = None,
) -> PublishSummary:
    """Publish every record of the files and dead-letter every issue; wait for the broker's reports.

    ``format_name`` None picks each file's format from its extension. Raises PublishSetupError
    (before publishing anything) for a missing file or an unknown format. For every record to get
    a delivery report, give the publisher a ``message.timeout.ms`` below ``flush_timeout``. Records
    dated outside ``event_times`` (default: PARCELSTREAM_MAX_FUTURE / _MAX_AGE) are dead-lettered.
    """
    event_times = event_times or EventTimeSettings()
    inputs = resolve_inputs(paths, format_name)
    summary = PublishSummary(files=len(inputs))
    sender = _FilePublisher(publisher, summary, on_issue)
    acknowledged_before = dict(publisher.report.acknowledged)
    failures_before = len(publisher.report.failures)
    for input_file in inputs:
        data = input_file.path.read_bytes()
        try:
            result = input_file.parser(data, str(input_file.path), carrier=carrier)
        except (FormatError, RecursionError) as error:
            # RecursionError: a parser recursed through hostile nesting; the file is bad, not the run.
            reason_code, message = (
                ("too_deep", "is nested too deeply to read")
                if isinstance(error, RecursionError)
                else ("unreadable_document", str(error))
            )
            summary.records_read += 1
            if progress is not None:
                progress.start_file(str(input_file.path), 1)
            sender.issues([ParseIssue(str(input_file.path), "(file)", message, data, reason_code)])
            continue
        records, out_of_range = split_by_event_time(result.records, event_times)
        result = ParseResult(records, [*result.issues, *out_of_range])
        bad_lines = len({issue.reference for issue in result.issues})
        summary.records_read += len(result.records) + bad_lines
        if progress is not None:
            progress.start_file(str(input_file.path), len(result.records) + bad_lines)
        for record in result.records:
            sender.record(record)
            if progress is not None:
                progress.advance()
        sender.issues(result.issues)
        if progress is not None:
            progress.advance(bad_lines)
    report = publisher.flush(flush_timeout)
    acknowledged = {
        topic: count - acknowledged_before.get(topic, 0)
        for topic, count in report.acknowledged.items()
        if count > acknowledged_before.get(topic, 0)
    }
    sender.account(report.failures[failures_before:], acknowledged)
    return summary
