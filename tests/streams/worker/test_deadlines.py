from __future__ import annotations

from streams.worker.deadlines import DeadlineHeap


def test_pop_due_returns_parcels_in_deadline_order_once() -> None:
    heap = DeadlineHeap()
    heap.schedule("b", 20)
    heap.schedule("a", 10)
    heap.schedule("c", 30)
    assert heap.pop_due(25) == ["a", "b"]
    assert heap.pop_due(25) == []
    assert len(heap) == 1
    assert heap.pop_due(30) == ["c"]


def test_a_moved_deadline_skips_the_stale_entry() -> None:
    heap = DeadlineHeap()
    heap.schedule("a", 10)
    heap.schedule("a", 50)
    assert heap.pop_due(20) == []
    assert heap.pop_due(50) == ["a"]


def test_a_cleared_deadline_never_fires() -> None:
    heap = DeadlineHeap()
    heap.schedule("a", 10)
    heap.schedule("a", None)
    assert heap.pop_due(100) == []
    assert len(heap) == 0


def test_rebuild_replaces_the_schedule() -> None:
    heap = DeadlineHeap()
    heap.schedule("old", 5)
    heap.rebuild([("a", 10), ("b", None), ("c", 3)])
    assert heap.pop_due(100) == ["c", "a"]


def test_many_reschedules_keep_the_heap_bounded() -> None:
    heap = DeadlineHeap()
    for deadline in range(10_000):
        heap.schedule("a", deadline)
    assert len(heap._heap) <= 2 * len(heap) + 1024
    assert heap.pop_due(10_000) == ["a"]


def test_count_due_counts_current_deadlines_up_to_a_limit() -> None:
    heap = DeadlineHeap()
    for index in range(100):
        heap.schedule(f"P{index}", 1_000 + index)
    heap.schedule("P0", 5_000)  # moved: its old entry is stale and not counted
    assert heap.count_due(1_049, limit=1_000) == 49
    assert heap.count_due(1_049, limit=10) == 10
    assert heap.count_due(999, limit=1_000) == 0
    assert "P0" in heap and "P100" not in heap
