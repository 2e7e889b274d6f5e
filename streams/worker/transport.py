"""The worker's Kafka transport: Faust's aiokafka transport with three fixes the worker's
correctness after a restart depends on, and a setting Faust does not expose.

1. Changelog end offsets are read from a fetch, so table recovery reads every changelog record.
Faust recovers a table by reading its changelog partitions up to their end offset, which it asks
for with ListOffsets(latest). Tansu (the embedded dev/test broker) answers that with the base
offset of the partition's last produce batch + 1, not the partition's end: a restarted worker
would skip the rest of that batch and hold an older state than it had already published. A Fetch
response's high watermark is right on Tansu as on Apache Kafka, so before recovery the worker
fetches the last reported record of each changelog partition and keeps the larger of the two
answers. On Apache Kafka both agree, and this costs one short-lived consumer per rebalance.

2. Partitions with no committed offset are sought to their beginning after recovery. Records the
consumer fetched during recovery but Faust did not take (it only takes changelog partitions then)
are dropped from the fetch buffer with the position already past them; Faust then seeks every
partition back to its committed offset, but aiokafka seeks only when there is one (> 0). A worker
killed before its first commit would therefore restart past inputs it never processed.

3. The fetch long-poll is ``WorkerApp.fetch_max_wait_ms`` (``PARCELSTREAM_FETCH_MAX_WAIT``), not the
1500 ms Faust hard-codes. Apache Kafka answers a waiting fetch as soon as data arrives, so there it
only bounds idle polling; Tansu holds it for the whole wait (measured: p50 produce→consume 622 ms
at 1500 ms, 23 ms at 100 ms), which made it the floor of the worker's latency.

4. Stream partitions are sought with the flow stopped, and a record handed to a stream while the
flow is stopped does not count as read. After table recovery Faust resumes the stream partitions,
seeks them to their committed offsets, then resumes its flow control, which empties every stream
queue, and only then resumes the flow; but recovery left the flow running, so while the seek is
under way the fetch loop hands records to the streams. Those records were emptied from the queues
unprocessed, yet counted as read: Faust's read offset (the last record handed over, per
partition) had passed them, so when fetched again they were dropped as already read, and the
hole between the committed offset and the next record handed over was taken as a gap in the
partition that commits may skip. A worker restarted after a SIGKILL lost inputs with its
consumer lag at 0 (the SIGKILL test in tests/streams/worker/test_worker.py failed 3 runs in 25
under CPU load; a failed run's log showed 24 queued records emptied after the seek and offsets
60-120 of a partition dropped). Stopping the flow first makes the fetch loop leave the rest of
its batch (Faust discards what it fetches with the flow stopped and seeks again). The record the
stop interrupts is still marked read by Faust, possibly after the seek reset the read offsets (or
after a revocation removed them): ``ReadOffsets`` ignores that mark for stream partitions, so
the record is read again. Changelog partitions keep Faust's behaviour (recovery seeks them).

5. The fetch loop's hand-over of a record does not cost four tasks unless it blocks. For every
record Faust awaits ``wait_first(callback(message), suspend_flow.wait())``, which wraps both plus
the consumer's stopped and crashed events in tasks and an ``asyncio.wait``. Usually the callback
finishes without waiting (the stream's queue is not full), so ``WorkerConsumer.wait_first`` steps
it once by hand when the flow is running and the consumer neither stopped nor crashed: if it
finished, that is the answer, as Faust's would be. If it waited, the rest of it runs under Faust's
``wait_first``, so a stop of the flow (or of the consumer) while it is blocked still cancels it
and the fetch loop moves on (4. above). Measured: ~11 % less worker CPU per scan.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Mapping
from types import CoroutineType
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from mode.services import WaitArgT, WaitResults
from mode.utils.times import Seconds

log = logging.getLogger(__name__)

#: Seconds to wait for the fetches; past it recovery fails (and the worker restarts) rather than
#: recovering a table from a changelog it may not have read to the end.
FETCH_TIMEOUT = 30.0
#: Faust's own value, kept by an app that does not set ``fetch_max_wait_ms``.
DEFAULT_FETCH_MAX_WAIT_MS = 1500


class EndOffsetsError(RuntimeError):
    """The fetched end offset of a changelog partition could not be read in time."""


def fetched_end_offsets(
    bootstrap_servers: str, reported: Mapping[tuple[str, int], int], timeout: float = FETCH_TIMEOUT
) -> dict[tuple[str, int], int]:
    """The end offset (next offset to be written) of each partition: the larger of the
    ``reported`` offset and the high watermark of a Fetch at ``reported - 1``. Blocking."""
    ends = dict(reported)
    to_fetch = {tp: end for tp, end in reported.items() if end > 0}
    if not to_fetch:
        return ends
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            # Only assign() is used: no group join, no commits.
            "group.id": "parcelstream-end-offsets",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "log_level": 0,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, partition, end - 1) for (topic, partition), end in to_fetch.items()])
        pending = set(to_fetch)
        deadline = time.monotonic() + timeout
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise EndOffsetsError(
                    f"no fetch answer within {timeout:.0f} s for {len(pending)} changelog partition(s), "
                    f"e.g. {sorted(pending)[0]}"
                )
            message = consumer.poll(min(remaining, 1.0))
            if message is None:
                continue
            error = message.error()
            if error is not None and error.code() != KafkaError._PARTITION_EOF:
                if error.fatal() or not error.retriable():
                    raise EndOffsetsError(f"fetching changelog end offsets failed: {error.str()}")
                continue
            key = (message.topic(), message.partition())
            if key not in pending:
                continue
            # The message (or end-of-partition event) is the answer of a fetch, whose high
            # watermark librdkafka now caches.
            _low, high = consumer.get_watermark_offsets(TopicPartition(*key), cached=True)
            ends[key] = max(ends[key], high)
            pending.discard(key)
    finally:
        consumer.close()
    corrected = {tp: (to_fetch[tp], ends[tp]) for tp in to_fetch if ends[tp] != to_fetch[tp]}
    if corrected:
        log.info(
            "changelog end offsets corrected by fetch for %d partition(s) (ListOffsets under-reported)", len(corrected)
        )
    return ends


class WorkerConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: faust_aiokafka.Transport) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Read by aiokafka when the consumer starts (it builds its fetcher then); see 3. above.
        consumer._fetch_max_wait_ms = getattr(self.app, "fetch_max_wait_ms", DEFAULT_FETCH_MAX_WAIT_MS)
        return consumer


class ReadOffsets(dict[TP, int | None]):
    """Faust's read offsets (per partition, the last offset handed to a stream; None: none yet),
    except that a stream partition's offset does not move while the consumer's flow is stopped
    (4. above). Faust marks each record it hands over with ``read_offsets[tp] = offset``; a seek
    resets them with ``update`` (``perform_seek``; a dict's ``update`` does not go through
    ``__setitem__``), which always applies. Faust's aiokafka transport seeks stream partitions
    only there."""

    def __init__(self, consumer: faust_consumer.Consumer) -> None:
        super().__init__()
        self._consumer = consumer

    def __missing__(self, tp: TP) -> None:
        return None

    def __setitem__(self, tp: TP, offset: int | None) -> None:
        consumer = self._consumer
        if consumer.flow_active or consumer._is_changelog_tp(tp):
            super().__setitem__(tp, offset)


#: ``suspend_flow`` is an ``asyncio.Event``: its ``wait()`` coroutines run this code.
_EVENT_WAIT_CODE = asyncio.Event.wait.__code__


async def finish_started(coroutine: Coroutine[Any, Any, Any], yielded: Any) -> Any:
    """Runs to its end ``coroutine``, stepped by hand until it yielded ``yielded``, as the task
    awaiting it would: resumed when what it waits for is done, with that outcome thrown into it
    if an exception, a cancellation of this task included (5. above)."""
    while True:
        outcome: BaseException | None = None
        try:
            if yielded is None:  # a bare yield: let the loop run once
                await asyncio.sleep(0)
            else:
                yielded._asyncio_future_blocking = False
                await yielded
        except BaseException as error:  # handed to the coroutine, as a task would
            outcome = error
        try:
            yielded = coroutine.send(None) if outcome is None else coroutine.throw(outcome)
        except StopIteration as finished:
            return finished.value


class WorkerConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer with the module docstring's fixes."""

    def __post_init__(self) -> None:
        super().__post_init__()
        # Faust binds the mapping's methods when its fetch loop starts, after this.
        self._read_offset = ReadOffsets(self)

    def _new_consumer_thread(self) -> WorkerConsumerThread:
        return WorkerConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def wait_first(self, *coros: WaitArgT, timeout: Seconds | None = None) -> WaitResults:  # noqa: ASYNC109 - mode's signature
        if len(coros) == 2 and timeout is None:
            callback, flow_stopped = coros
            if (
                type(callback) is CoroutineType
                and type(flow_stopped) is CoroutineType
                and flow_stopped.cr_code is _EVENT_WAIT_CODE
                and flow_stopped.cr_frame.f_locals.get("self") is self.suspend_flow
                and not (self.suspend_flow.is_set() or self._stopped.is_set() or self._crashed.is_set())
            ):
                return await self._hand_over(callback, flow_stopped)
        return await super().wait_first(*coros, timeout=timeout)

    async def _hand_over(
        self, callback: Coroutine[Any, Any, Any], flow_stopped: Coroutine[Any, Any, bool]
    ) -> WaitResults:
        """The fetch loop's ``wait_first(callback, suspend_flow.wait())`` with the flow running (5. above)."""
        try:
            yielded = callback.send(None)
        except StopIteration as finished:
            flow_stopped.close()
            if self._stopped.is_set() or self._crashed.is_set():  # as Faust's wait_first answers
                return WaitResults([], [], True)
            return WaitResults([callback], [finished.value], False)
        except BaseException:
            flow_stopped.close()
            raise
        rest = finish_started(callback, yielded)
        results = await super().wait_first(rest, flow_stopped)
        return results._replace(done=[callback if done is rest else done for done in results.done])

    async def perform_seek(self) -> None:
        # Faust's callers resume the flow after emptying the stream queues (4. above).
        self.stop_flow()
        await super().perform_seek()

    async def highwaters(self, *partitions: TP) -> Mapping[TP, int]:
        reported = await super().highwaters(*partitions)
        bootstrap_servers = ",".join(f"{url.host}:{url.port or 9092}" for url in self.app.conf.broker_consumer)
        by_key = {(tp.topic, tp.partition): end for tp, end in reported.items() if end is not None}
        ends = await asyncio.get_running_loop().run_in_executor(None, fetched_end_offsets, bootstrap_servers, by_key)
        return {tp: ends.get((tp.topic, tp.partition), end) for tp, end in reported.items()}

    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed = await super().seek_to_committed()
        changelogs = self.app.tables.changelog_topics
        uncommitted = [tp for tp, offset in committed.items() if not offset and tp.topic not in changelogs]
        if uncommitted:
            await self._thread.seek_to_beginning(*uncommitted)
        return committed


class WorkerTransport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with ``WorkerConsumer``."""

    Consumer: Any = WorkerConsumer
