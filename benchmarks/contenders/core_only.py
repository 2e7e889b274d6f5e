"""The worker's core alone: the ceiling of any process that runs it, whatever its Kafka shell.

Reads every input record of the run (scans and manifests) into memory first, untimed, then times
one pass of them through the core as the worker drives it, in this process, with no Kafka:
``benchmarks.state.run_core`` (batches of the worker's size over dict tables, warm cache, outputs,
table and outbox writes, estimate rows and due times, fan-out copies fed back as inputs) on the
Processor the worker builds from its settings (``Processor.from_settings``, the run's environment:
retention as the worker's), the collector tuned as the worker's, the wall clock as the worker's.

Nothing is consumed, produced or awaited while timed, so its scans/s over the raw loop's bounds what
one worker (one Python process running this core) can reach: a worker also fetches, writes its
tables' changelogs and publishes the outputs.
"""

from __future__ import annotations

import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from benchmarks.contenders.common import Window, arguments, write_result
from benchmarks.state import run_core, worker_gc
from schemas.topics import TopicNames
from streams.settings import WorkerSettings
from streams.worker.processor import Processor, SourceMessage


def read_inputs(bootstrap_servers: str, topics: TopicNames, partitions: int, count: int) -> list[SourceMessage]:
    """The first ``count`` records of the scans and manifests topics, as the worker's agent gets them."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"{topics.prefix}-core-only",
            "enable.auto.commit": False,
            "log_level": 3,
        }
    )
    consumer.assign(
        [
            TopicPartition(topic, partition, OFFSET_BEGINNING)
            for topic in (topics.scans, topics.manifests)
            for partition in range(partitions)
        ]
    )
    inputs: list[SourceMessage] = []
    try:
        while len(inputs) < count:
            for message in consumer.consume(5000, timeout=1.0):
                if message.error() is None:
                    inputs.append(
                        SourceMessage(
                            message.topic(),
                            message.partition(),
                            message.offset(),
                            message.key(),
                            message.value(),
                            tuple(message.headers() or ()),
                        )
                    )
    finally:
        consumer.close()
    return inputs


def main() -> None:
    args = arguments(__doc__ or "")
    settings = WorkerSettings(topic_prefix=args.output_prefix)
    inputs = read_inputs(args.bootstrap_servers, TopicNames(args.input_prefix), args.partitions, args.inputs)
    # Outputs go to the output prefix's names (never produced): the processor routes by them.
    processor = Processor.from_settings(settings)
    window = Window()
    with worker_gc():
        window.start()
        result = run_core(inputs, args.partitions, settings.batch_size, processor, time.time_ns() // 1_000_000)
        window.mark()
    write_result(args.result, window.result(result["inputs"], result["state_updates"]))


if __name__ == "__main__":
    main()
