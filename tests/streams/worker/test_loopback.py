"""The fan-out loopback's bookkeeping (streams/worker/loopback.py): which stored copies the worker
applies itself, which consumer messages it skips for them, and what a rebalance forgets."""

from __future__ import annotations

from streams.worker.loopback import FanoutLoopback
from streams.worker.processor import SourceMessage

FANOUT = "t.scans-fanout"


def copy(partition: int, offset: int | None, topic: str = FANOUT) -> SourceMessage:
    return SourceMessage(topic, partition, offset, b"LP000000001CN", b"scan", (("parcelstream-fanout-path", b"BAG1"),))


def test_copies_to_owned_partitions_are_applied_and_their_messages_skipped_once() -> None:
    loopback = FanoutLoopback(FANOUT)
    owned = loopback.own([copy(0, 10), copy(1, 4), copy(2, 7)], owned={0, 1}, generation=loopback.generation)

    assert owned == [copy(0, 10), copy(1, 4)]  # partition 2 belongs to another worker
    loopback.take(owned)
    assert loopback.is_applied(FANOUT, 0, 10)
    assert not loopback.is_applied(FANOUT, 0, 10)  # the message comes once: forgotten after it
    assert not loopback.is_applied(FANOUT, 2, 7)  # not applied here: the consumer's message is
    assert not loopback.is_applied("t.scans", 1, 4)  # another topic's offset 4
    assert loopback.is_applied(FANOUT, 1, 4)
    assert len(loopback) == 0


def test_another_workers_copy_between_ours_in_the_same_partition_is_not_skipped() -> None:
    loopback = FanoutLoopback(FANOUT)
    loopback.take(loopback.own([copy(0, 100), copy(0, 102)], owned={0}, generation=loopback.generation))

    assert [loopback.is_applied(FANOUT, 0, offset) for offset in (100, 101, 102)] == [True, False, True]


def test_only_broker_stored_copies_of_the_fanout_topic_are_applied() -> None:
    loopback = FanoutLoopback(FANOUT)
    stored = [copy(0, 1, topic="t.parcel-state"), copy(0, None)]

    assert loopback.own(stored, owned={0}, generation=loopback.generation) == []


def test_a_rebalance_forgets_the_offsets_and_drops_the_copies_of_a_batch_begun_before_it() -> None:
    loopback = FanoutLoopback(FANOUT)
    loopback.take([copy(0, 1)])
    begun = loopback.generation

    loopback.clear()  # partitions revoked or assigned: the consumer reads from its committed offsets

    assert loopback.own([copy(0, 3)], owned={0}, generation=begun) == []  # the batch's next round
    assert not loopback.is_applied(FANOUT, 0, 1)  # read again and applied again: a duplicate, not a loss


def test_offsets_to_skip_are_bounded_and_the_oldest_forgotten_first() -> None:
    loopback = FanoutLoopback(FANOUT, max_skipped=3)
    loopback.take([copy(0, offset) for offset in range(5)])

    assert len(loopback) == 3
    assert [loopback.is_applied(FANOUT, 0, offset) for offset in range(5)] == [False, False, True, True, True]
