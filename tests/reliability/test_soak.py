"""The short soak of the suite: 45 s of sustained traffic through worker and projector, memory and lag
sampled every 5 s (the long one is `python -m tests.reliability.soak`, see docs/reliability.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from tests.reliability.soak import run_soak

pytestmark = pytest.mark.e2e


def test_short_soak_keeps_memory_flat_and_lag_bounded(bootstrap_servers: str, redis_url: str, tmp_path: Path) -> None:
    result = run_soak(bootstrap_servers, redis_url, tmp_path, seconds=45, rate=150, max_rss_growth_mb=60)
    Console(width=120).print(result.table())
    print(f"soak: {result.published:,} records published; lag drained after {result.drained_after_s} s")
    assert result.published >= 0.9 * 45 * 150
    assert len(result.samples) >= 5
    assert result.ok, result.problems
