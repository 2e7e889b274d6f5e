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


def test_contains_tells_whether_a_parcel_has_a_pending_deadline() -> None:
    heap = DeadlineHeap()
    heap.schedule("a", 10)
    assert "a" in heap and "b" not in heap
    heap.pop_due(10)
    assert "a" not in heap
