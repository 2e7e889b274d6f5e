"""What every format adapter returns: records ready to publish, and issues that point at the
record and field that was wrong (the publisher dead-letters those with their reason)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol


class FormatError(ValueError):
    """Input that a parser cannot read at all (not one bad record: the whole document)."""


@dataclass(frozen=True)
class ParsedRecord:
    kind: Literal["scan", "manifest"]
    value: dict[str, Any]  # a ScanEvent or Manifest dict, valid against schemas/avro
    reference: str  # where it came from, e.g. "scans.jsonl:12" or "FSU message 3"


@dataclass(frozen=True)
class ParseIssue:
    reference: str  # e.g. "scans.jsonl:14"
    field: str  # path of the offending field, e.g. "event_time" or "events[2].bizStep"
    message: str
    raw: bytes  # the offending input, kept for the dead-letter topic
    reason_code: str = "malformed_record"


@dataclass
class ParseResult:
    records: list[ParsedRecord] = field(default_factory=list)
    issues: list[ParseIssue] = field(default_factory=list)


class Parser(Protocol):
    def __call__(self, data: bytes, source_name: str, *, carrier: str | None = None) -> ParseResult: ...
