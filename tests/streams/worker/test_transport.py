"""The worker's transport fixes (streams/worker/transport.py), on the real broker: changelog end
offsets read from a fetch, the fetch long-poll, read offsets a stopped flow does not move, and the
fetch loop's hand-over of a record without tasks unless it waits."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest
from aiokafka import TopicPartition as AIOKafkaTopicPartition
from aiokafka.structs import OffsetAndMetadata
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from faust.types import TP
from mode.services import WaitResults

from streams.settings import WorkerSettings
from streams.worker.app import create_app
from streams.worker.transport import EndOffsetsError, WorkerConsumer, fetched_end_offsets
from tests.conftest import unique

pytestmark = pytest.mark.integration


def compacted_topic(bootstrap_servers: str, partitions: int) -> str:
    name = unique("changelog")
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    config = {"cleanup.policy": "compact", "retention.ms": "-1"}
    admin.create_topics([NewTopic(name, partitions, 1, config=config)])[name].result(timeout=15)
    return name


def produce_batches(bootstrap_servers: str, topic: str, partition: int, batches: int, per_batch: int) -> None:
    """``batches`` produce requests of ``per_batch`` records each: flushing between them keeps the
    batches apart."""
    producer = Producer({"bootstrap.servers": bootstrap_servers, "linger.ms": 50, "enable.idempotence": True})
    for batch in range(batches):
        for record in range(per_batch):
            producer.produce(topic, key=f"k{batch}-{record}", value=b"state", partition=partition)
        assert producer.flush(15) == 0


def test_the_end_offset_counts_every_record_of_the_last_batch(bootstrap_servers: str) -> None:
    topic = compacted_topic(bootstrap_servers, partitions=3)
    produce_batches(bootstrap_servers, topic, partition=0, batches=5, per_batch=3)
    produce_batches(bootstrap_servers, topic, partition=1, batches=1, per_batch=4)

    # What the broker's ListOffsets says is the starting point; on Tansu it is 13 and 1 here.
    reported = {(topic, 0): 13, (topic, 1): 1, (topic, 2): 0}
    assert fetched_end_offsets(bootstrap_servers, reported) == {(topic, 0): 15, (topic, 1): 4, (topic, 2): 0}


def test_a_right_answer_is_kept(bootstrap_servers: str) -> None:
    topic = compacted_topic(bootstrap_servers, partitions=1)
    produce_batches(bootstrap_servers, topic, partition=0, batches=2, per_batch=2)

    assert fetched_end_offsets(bootstrap_servers, {(topic, 0): 4}) == {(topic, 0): 4}


def test_an_unreachable_broker_is_a_clear_error() -> None:
    with pytest.raises(EndOffsetsError, match="no fetch answer within 1 s"):
        fetched_end_offsets("127.0.0.1:1", {("changelog", 0): 5}, timeout=1.0)


def test_the_workers_fetch_long_poll_is_its_setting_not_fausts_fixed_one() -> None:
    async def fetch_max_wait_ms(settings: WorkerSettings) -> int:
        app = create_app(settings)
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        try:
            return int(consumer._fetch_max_wait_ms)
        finally:
            await consumer.stop()

    assert asyncio.run(fetch_max_wait_ms(WorkerSettings(topic_prefix=unique("t"), fetch_max_wait=0.05))) == 50
    assert asyncio.run(fetch_max_wait_ms(WorkerSettings(topic_prefix=unique("t")))) == 100


def test_a_record_handed_over_while_the_flow_is_stopped_does_not_move_its_read_offset() -> None:
    app = create_app(WorkerSettings(topic_prefix=unique("t")))
    app.Table("parcels", default=int)
    consumer = app.consumer
    scans, changelog = TP(f"{app.conf.id}.scans", 0), TP(next(iter(app.tables.changelog_topics)), 0)
    # Faust's fetch loop marks each record it hands over through this bound method.
    mark_read = consumer._read_offset.__setitem__

    mark_read(scans, 41)
    assert consumer._read_offset[scans] == 41
    # A revocation removes the read offsets, then stops the flow; the record it interrupted is marked after.
    consumer._read_offset.pop(scans)
    consumer.stop_flow()
    mark_read(scans, 42)
    assert consumer._read_offset[scans] is None
    # A seek's reset always applies; a record marked after it does not undo it.
    consumer._read_offset.update({scans: 30})
    mark_read(scans, 45)
    assert consumer._read_offset[scans] == 30
    # Table recovery reads changelogs with its own seeks, as Faust does.
    mark_read(changelog, 7)
    assert consumer._read_offset[changelog] == 7
    consumer.resume_flow()
    mark_read(scans, 31)
    assert consumer._read_offset[scans] == 31


def test_a_record_fetched_before_the_seek_to_committed_is_read_again_after_it(bootstrap_servers: str) -> None:
    """After recovery Faust seeks the stream partitions to their committed offsets while the fetch loop
    may still be handing over a batch it fetched before; the seek must leave the read offset at the
    committed offset, or the records below the batch's are dropped as already read when fetched again."""
    topic = compacted_topic(bootstrap_servers, partitions=1)
    produce_batches(bootstrap_servers, topic, partition=0, batches=1, per_batch=10)
    tp = TP(topic, 0)

    async def read_offset_after_a_late_record() -> int | None:
        app = create_app(WorkerSettings(bootstrap_servers=bootstrap_servers, topic_prefix=unique("t")))
        consumer = app.consumer
        assert isinstance(consumer, WorkerConsumer)
        await consumer.start()
        try:
            kafka = consumer._thread._ensure_consumer()

            async def assign_and_commit() -> None:
                kafka.assign([AIOKafkaTopicPartition(topic, 0)])
                await kafka.commit({AIOKafkaTopicPartition(topic, 0): OffsetAndMetadata(5, "")})

            await consumer._thread.call_thread(assign_and_commit)
            mark_read = consumer._read_offset.__setitem__
            mark_read(tp, 8)  # handed over during recovery from a batch fetched before the seek
            await consumer.perform_seek()
            mark_read(tp, 9)  # the next record of that batch, handed over once the seek is done
            return consumer._read_offset[tp]
        finally:
            await consumer.stop()

    assert asyncio.run(read_offset_after_a_late_record()) == 5


def worker_consumer() -> WorkerConsumer:
    consumer = create_app(WorkerSettings(topic_prefix=unique("t"))).consumer
    assert isinstance(consumer, WorkerConsumer)
    return consumer


def test_a_record_handed_over_without_waiting_is_handed_over_in_the_fetch_loops_task() -> None:
    async def hand_over() -> tuple[WaitResults, bool, Coroutine[Any, Any, Any]]:
        consumer = worker_consumer()
        fetch_loop = asyncio.current_task()
        in_fetch_loop = False

        async def callback() -> str:
            nonlocal in_fetch_loop
            in_fetch_loop = asyncio.current_task() is fetch_loop
            return "handed over"

        handed_over = callback()
        results = await consumer.wait_first(handed_over, consumer.suspend_flow.wait())
        return results, in_fetch_loop, handed_over

    results, in_fetch_loop, handed_over = asyncio.run(hand_over())
    assert results == WaitResults([handed_over], ["handed over"], False)
    assert in_fetch_loop  # no task was created for it


def test_a_record_whose_hand_over_waits_is_handed_over_when_the_wait_ends() -> None:
    async def hand_over() -> tuple[WaitResults, Coroutine[Any, Any, Any], list[str]]:
        consumer = worker_consumer()
        loop = asyncio.get_running_loop()
        queue_has_room, refused = loop.create_future(), loop.create_future()
        steps: list[str] = []

        async def callback() -> int:
            steps.append("full queue")
            room = await queue_has_room
            await asyncio.sleep(0)  # a bare yield
            try:
                await refused
            except KeyError:
                steps.append("error thrown in")
            return room

        handed_over = callback()
        loop.call_soon(queue_has_room.set_result, 3)
        loop.call_soon(refused.set_exception, KeyError("full"))
        return await consumer.wait_first(handed_over, consumer.suspend_flow.wait()), handed_over, steps

    results, handed_over, steps = asyncio.run(hand_over())
    assert results == WaitResults([handed_over], [3], False)
    assert steps == ["full queue", "error thrown in"]


@pytest.mark.parametrize("stop", ["flow", "consumer"])
def test_a_hand_over_blocked_when_the_flow_or_the_consumer_stops_is_cancelled(stop: str) -> None:
    async def hand_over() -> tuple[WaitResults, bool, bool]:
        consumer = worker_consumer()
        loop = asyncio.get_running_loop()
        blocked, cancelled = asyncio.Event(), asyncio.Event()
        queue_has_room = loop.create_future()

        async def callback() -> None:
            try:
                blocked.set()
                await queue_has_room
            except asyncio.CancelledError:
                cancelled.set()
                raise

        fetch_loop = asyncio.create_task(consumer.wait_first(callback(), consumer.suspend_flow.wait()))
        await blocked.wait()
        if stop == "flow":
            consumer.stop_flow()
        else:
            consumer._stopped.set()
        results = await fetch_loop
        await asyncio.wait_for(cancelled.wait(), timeout=5)
        return results, cancelled.is_set(), queue_has_room.cancelled()

    results, cancelled, wait_cancelled = asyncio.run(hand_over())
    assert results.stopped is (stop == "consumer")
    assert not results.results or results.results == [True]  # the flow's stop won, not the hand-over
    assert cancelled and wait_cancelled


@pytest.mark.parametrize("waits", [False, True])
def test_a_hand_over_error_propagates(waits: bool) -> None:
    async def hand_over() -> None:
        consumer = worker_consumer()
        loop = asyncio.get_running_loop()

        async def callback() -> None:
            if waits:
                ready = loop.create_future()
                loop.call_soon(ready.set_result, None)
                await ready
            raise ValueError("undecodable")

        await consumer.wait_first(callback(), consumer.suspend_flow.wait())

    with pytest.raises(ValueError, match="undecodable"):
        asyncio.run(hand_over())


@pytest.mark.parametrize("call", ["flow stopped", "another event"])
def test_other_waits_keep_fausts_tasks(call: str) -> None:
    async def task_of_callback() -> bool:
        consumer = worker_consumer()
        caller = asyncio.current_task()
        other_event = asyncio.Event()
        in_caller = True

        async def callback() -> None:
            nonlocal in_caller
            in_caller = asyncio.current_task() is caller

        if call == "flow stopped":
            consumer.stop_flow()
            # Faust's wait_first with a stopped flow: both finish, the callback in its own task.
            await consumer.wait_first(callback(), consumer.suspend_flow.wait())
        else:
            await consumer.wait_first(callback(), other_event.wait())
        return in_caller

    assert asyncio.run(task_of_callback()) is False
