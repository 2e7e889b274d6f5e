"""The worker process's set-up outside Faust: the garbage collector tuned for the batch loop."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from streams.worker.app import GC_THRESHOLDS, tune_gc


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_gc")
def test_tune_gc_freezes_the_start_up_heap_and_sets_the_batch_thresholds() -> None:
    start_up = {"imported": ["at start-up"]}
    assert any(tracked is start_up for tracked in gc.get_objects())
    tune_gc()
    assert gc.get_threshold() == GC_THRESHOLDS
    assert gc.get_freeze_count() > 0
    assert not any(tracked is start_up for tracked in gc.get_objects())  # no collection walks it again
