"""Format adapters: pure parsers from carriers' formats to ScanEvent / Manifest records.

``parser_for(name)`` returns the parser of a format; each lives in its own module.
"""

from __future__ import annotations

import importlib

from producers.formats.base import FormatError, ParsedRecord, ParseIssue, Parser, ParseResult

#: format name (CLI ``--format``, gateway endpoint) → "module:function"
FORMATS: dict[str, str] = {
    "jsonl": "producers.formats.native:parse_jsonl",
    "csv": "producers.formats.native:parse_csv",
    "fsu": "producers.formats.iata_fsu:parse",
    "xfsu": "producers.formats.iata_xfsu:parse",
    "onerecord": "producers.formats.iata_onerecord:parse",
    "emsevt": "producers.formats.upu_emsevt:parse",
    "epcis": "producers.formats.gs1_epcis:parse",
    "carrier-csv": "producers.formats.carrier_csv:parse",
}


def parser_for(name: str) -> Parser:
    try:
        target = FORMATS[name]
    except KeyError:
        raise FormatError(f"unknown format {name!r}; known: {', '.join(FORMATS)}") from None
    module_name, _, function = target.partition(":")
    return getattr(importlib.import_module(module_name), function)


__all__ = ["FORMATS", "FormatError", "ParseIssue", "ParseResult", "ParsedRecord", "Parser", "parser_for"]
