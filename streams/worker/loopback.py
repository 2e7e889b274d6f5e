"""Fan-out copies for the worker's own partitions, applied right after the batch that published them.

A unit scan (a container, ULD or bag) reaches its members as copies on ``scans-fanout``, keyed by
the member, one hop per level of nesting (container > ULD > bag > parcel is three). Through the
broker every hop costs a fetch (on Tansu a fetch is held for the whole fetch wait) and a wait for
the next batch, so a parcel in a bag in a ULD in a container got its ParcelState three such trips
after the container's scan: the tail of the latency benchmark. Most copies go to partitions this
worker owns anyway (all of them with one worker). Once the broker acknowledged a batch's outputs,
the worker applies those copies in a further round of the same batch, from the copy as the broker
stored it (topic, partition, offset, key, value and fan-out path: the message the consumer will
read), and skips that message when the consumer hands it over.

Why this keeps the delivery semantics (docs/streams.md, "Delivery semantics"):

- A copy is applied only once the broker acknowledged it: it is in the log, at that offset.
- Its effect is stored as any input's: the round's table writes are acknowledged before its
  outputs are published. The consumer's own message of the copy comes later, and is acknowledged
  (then committed) with the batch that skips it.
- A crash before that commit replays the copy from the log: a duplicate, which the core
  recognises by its event id, as any repeated copy after a crash.
- Partitions move: a rebalance forgets the offsets to skip and stops the rounds in progress
  (``generation``); the consumer then reads the copies from its committed offset, as without this.
- Another worker's copies to the same partition are not skipped: offsets are kept one by one.

Bounds: a round holds one batch's fan-out outputs, and rounds stop at the fan-out depth limit.
An offset to skip is dropped when its message comes (or at the next rebalance), and at most
``MAX_SKIPPED_OFFSETS`` are kept: past it the oldest are forgotten, and their messages are applied
again as duplicates (correct, only slower).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from streams.worker.processor import SourceMessage

#: Offsets to skip kept at most (a message whose offset was forgotten is applied as a duplicate).
MAX_SKIPPED_OFFSETS = 20_000


class FanoutLoopback:
    """Which stored fan-out copies the worker applies itself, and which consumer messages to skip for them."""

    def __init__(self, topic: str, max_skipped: int = MAX_SKIPPED_OFFSETS) -> None:
        self.topic = topic
        self.max_skipped = max_skipped
        #: (partition, offset) of the copies taken, in the order taken (dicts keep insertion order).
        self._skip: dict[tuple[int, int], None] = {}
        #: Moves at every ``clear``: copies stored by a batch that began before it are not applied.
        self.generation = 0

    def own(self, stored: Iterable[SourceMessage], owned: Collection[int], generation: int) -> list[SourceMessage]:
        """The copies stored in partitions of ``topic`` in ``owned`` (this worker's), unless
        partitions moved since ``generation`` (read when the batch began)."""
        if generation != self.generation:
            return []
        return [
            copy for copy in stored if copy.topic == self.topic and copy.partition in owned and copy.offset is not None
        ]

    def take(self, copies: list[SourceMessage]) -> list[SourceMessage]:
        """``copies`` about to be applied: their messages will be skipped when the consumer hands them over."""
        skip = self._skip
        for copy in copies:
            skip[copy.partition, copy.offset] = None  # type: ignore[index]
        while len(skip) > self.max_skipped:
            del skip[next(iter(skip))]
        return copies

    def is_applied(self, topic: str, partition: int, offset: int) -> bool:
        """Whether the consumer's message is a copy taken before (then forgotten: it comes once)."""
        if topic != self.topic or not self._skip:
            return False
        try:
            del self._skip[partition, offset]
        except KeyError:
            return False
        return True

    def clear(self) -> None:
        """Partitions moved (or a batch failed): the consumer reads every copy from its committed offset."""
        self._skip.clear()
        self.generation += 1

    def __len__(self) -> int:
        return len(self._skip)
