"""Fixtures of the deploy tests: the repository root and the metric catalog of docs/metrics.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def metric_catalog() -> dict[str, str]:
    """Metric name → type, from the table of docs/metrics.md (the one place names are defined)."""
    text = (REPO_ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    catalog = dict(re.findall(r"^\| `(parcelstream_\w+)` \| (\w+) \|", text, flags=re.MULTILINE))
    assert catalog, "no metric found in docs/metrics.md"
    return catalog
