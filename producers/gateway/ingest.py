"""What the gateway does with a request body, as pure functions: parse it into records, list every
problem with the record and field it concerns, and check the records against the caller's key.

A batch is all or nothing: when any record is invalid the whole batch is rejected (422) with every
problem listed, and nothing of it is published. The carrier fixes the records and resends the
batch (with the same Idempotency-Key if it likes); accepting part of a batch would leave the
carrier to work out which records to resend.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from producers.event_times import split_by_event_time
from producers.formats import FormatError, ParsedRecord, ParseIssue, parser_for
from producers.formats.native import parse_jsonl
from producers.gateway.keys import SHIPMENT_FACTS_CODE, ApiKey
from schemas.event_time import EventTimeSettings

#: Formats whose records name their carrier: checked against the key's carrier (403). Every other
#: format carries no carrier code of ours, so its records are attributed to the key's carrier.
FORMATS_WITH_CARRIER: Final = ("jsonl", "csv")
#: Formats with an optional carrier column: rows that fill it must name the key's carrier (403);
#: the others are attributed to the key's carrier.
FORMATS_WITH_OPTIONAL_CARRIER: Final = ("carrier-csv",)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request: which record (``reference``, ``index`` in a JSON batch), which
    field (a path such as ``records[3].event_time``) and what."""

    reference: str
    field: str
    message: str
    reason_code: str = "malformed_record"
    index: int | None = None

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class RequestRejectedError(Exception):
    """The request cannot be accepted: ``status_code``, a short ``error`` code, a one-line message."""

    def __init__(
        self,
        status_code: int,
        error: str,
        message: str,
        problems: Sequence[Problem] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error = error
        self.message = message
        self.problems = list(problems)
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "message": self.message, "problems": [p.as_json() for p in self.problems]}


@dataclass
class ParsedBatch:
    """Valid records, the issues of the invalid ones, and what the input claims about its sender:
    (reference, index, carrier, source) per record, for the key check."""

    records: list[ParsedRecord] = field(default_factory=list)
    issues: list[ParseIssue] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    claims: list[tuple[str, int | None, Any, Any]] = field(default_factory=list)

    @property
    def size(self) -> int:
        """Records in the input, valid or not."""
        return len(self.records) + len({issue.reference for issue in self.issues})


def _too_many(count: int, max_records: int) -> RequestRejectedError:
    return RequestRejectedError(
        413, "too_many_records", f"the batch holds {count} records; at most {max_records} per request"
    )


def _record_path(index: int, issue_field: str) -> str:
    if issue_field in ("(line)", "(schema)"):
        return f"records[{index}]"
    return f"records[{index}].{issue_field}"


def parse_scan_batch(body: bytes, max_records: int) -> ParsedBatch:
    """``{"records": [...]}`` of native records (scan or manifest, as one line of parse_jsonl)."""
    try:
        document = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as error:
        raise RequestRejectedError(422, "invalid_body", f"the body is not a JSON document: {error}") from None
    except RecursionError:
        raise RequestRejectedError(
            422,
            "too_deep",
            "the body is JSON nested too deeply to read",
            [Problem("(body)", "(document)", "nested too deeply", "too_deep")],
        ) from None
    if not isinstance(document, dict) or not isinstance(document.get("records"), list):
        raise RequestRejectedError(
            422,
            "invalid_body",
            'the body must be a JSON object {"records": [...]}',
            [Problem("(body)", "records", "must be a list of records")],
        )
    unknown = [name for name in document if name != "records"]
    if unknown:
        problems = [Problem("(body)", name, "is not a field of the batch (only records)") for name in unknown]
        raise RequestRejectedError(422, "invalid_body", "the batch has unknown fields", problems)
    records = document["records"]
    if len(records) > max_records:
        raise _too_many(len(records), max_records)
    batch = ParsedBatch()
    for index, record in enumerate(records):
        reference = f"records[{index}]"
        if isinstance(record, dict):
            batch.claims.append((reference, index, record.get("carrier"), record.get("source")))
        raw = json.dumps(record, ensure_ascii=False).encode()
        result = parse_jsonl(raw, reference)
        batch.records.extend(dataclasses.replace(parsed, reference=reference) for parsed in result.records)
        for found in result.issues:
            issue = dataclasses.replace(found, reference=reference, field=_record_path(index, found.field))
            batch.issues.append(issue)
            batch.problems.append(Problem(reference, issue.field, issue.message, issue.reason_code, index))
    return batch


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_format_body(format_name: str, body: bytes, carrier: str, max_records: int) -> ParsedBatch:
    """A carrier's document in ``format_name`` (a name of producers.formats.FORMATS)."""
    parser = parser_for(format_name)
    source_name = f"{format_name} body"
    try:
        if format_name in FORMATS_WITH_CARRIER:
            result = parser(body, source_name)
        else:
            result = parser(body, source_name, carrier=carrier)
    except FormatError as error:
        raise RequestRejectedError(
            422,
            "unreadable_document",
            f"the {format_name} document cannot be read: {error}",
            [Problem(source_name, "(document)", str(error), "unreadable_document")],
        ) from None
    except RecursionError:
        # A parser that recursed through hostile nesting: the document, not the gateway, is at fault.
        message = f"the {format_name} document is nested too deeply to read"
        raise RequestRejectedError(
            422, "too_deep", message, [Problem(source_name, "(document)", "nested too deeply", "too_deep")]
        ) from None
    batch = ParsedBatch(records=result.records, issues=result.issues)
    if batch.size > max_records:
        raise _too_many(batch.size, max_records)
    batch.problems = [Problem(i.reference, i.field, i.message, i.reason_code) for i in result.issues]
    stated = result.records
    if format_name in FORMATS_WITH_OPTIONAL_CARRIER:
        stated = parser(body, source_name).records  # the rows that name a carrier themselves
    batch.claims = [
        (record.reference, None, record.value.get("carrier"), record.value.get("source")) for record in stated
    ]
    return batch


_RECORD_INDEX: Final = re.compile(r"records\[(\d+)\]")


def bound_event_times(batch: ParsedBatch, bounds: EventTimeSettings, now_ms: int | None = None) -> None:
    """Move records dated outside ``bounds`` from the batch's records to its issues and problems
    (``event_time_out_of_range``, 422): the stream processor's clock must not follow them."""
    batch.records, issues = split_by_event_time(batch.records, bounds, now_ms)
    for issue in issues:
        match = _RECORD_INDEX.fullmatch(issue.reference)
        index = int(match.group(1)) if match else None
        path = f"{issue.reference}.event_time" if match else issue.field
        batch.issues.append(dataclasses.replace(issue, field=path))
        batch.problems.append(Problem(issue.reference, path, issue.message, issue.reason_code, index))


def forbidden_records(
    claims: Iterable[tuple[str, int | None, Any, Any]], key: ApiKey, field_prefix: bool
) -> list[Problem]:
    """Records this key may not publish: another carrier's code, or a source the key does not allow."""
    problems = []
    for reference, index, carrier, source in claims:
        prefix = f"{reference}." if field_prefix else ""
        if isinstance(carrier, str) and carrier and carrier != key.carrier:
            message = f"carrier {carrier!r} is not this API key's carrier {key.carrier!r}"
            problems.append(Problem(reference, f"{prefix}carrier", message, "carrier_mismatch", index))
        if isinstance(source, str) and source and source not in key.sources:
            message = f"source {source!r} is not allowed for this API key (allowed: {', '.join(key.sources)})"
            problems.append(Problem(reference, f"{prefix}source", message, "source_not_allowed", index))
    return problems


def out_of_scope(records: Iterable[ParsedRecord], key: ApiKey, field_prefix: bool) -> list[Problem]:
    """Parsed scans outside the key's codes, or carrying shipment facts the key was not granted."""
    problems = []
    for record in records:
        if record.kind != "scan":
            continue
        match = _RECORD_INDEX.fullmatch(record.reference)
        index = int(match.group(1)) if match else None
        prefix = f"{record.reference}." if field_prefix else ""
        code = record.value["code"]
        if (code == SHIPMENT_FACTS_CODE or record.value.get("shipment") is not None) and not key.shipment_facts:
            field = "code" if code == SHIPMENT_FACTS_CODE else "shipment"
            what = f"code {code!r}" if field == "code" else "a shipment"
            message = (
                f"{what} sets shipment facts (merchant, destination), which this API key may not; "
                f"they need a key created with --codes {SHIPMENT_FACTS_CODE},..."
            )
            problems.append(Problem(record.reference, f"{prefix}{field}", message, "shipment_facts_not_allowed", index))
            continue
        if code not in key.codes:
            message = f"code {code!r} is not allowed for this API key (allowed: {key.codes_shown})"
            problems.append(Problem(record.reference, f"{prefix}code", message, "code_not_allowed", index))
    return problems


def dead_letter_groups(issues: Iterable[ParseIssue]) -> list[list[ParseIssue]]:
    """One dead letter per bad record: its issues together, in order."""
    groups: dict[tuple[str, bytes], list[ParseIssue]] = {}
    for issue in issues:
        groups.setdefault((issue.reference, issue.raw), []).append(issue)
    return list(groups.values())


@dataclass(frozen=True)
class Accepted:
    """The 202 answer: how many records the broker acknowledged and their ids."""

    accepted: int
    scans: int
    manifests: int
    event_ids: list[str]
    manifest_ids: list[str]

    @classmethod
    def of(cls, records: Sequence[ParsedRecord]) -> Accepted:
        event_ids = [r.value["event_id"] for r in records if r.kind == "scan"]
        manifest_ids = [r.value["manifest_id"] for r in records if r.kind == "manifest"]
        return cls(len(records), len(event_ids), len(manifest_ids), event_ids, manifest_ids)
