"""The raw loop with confluent-kafka: consume(5000) + fastavro decode + one dict update per record.

No framework, no output: the limit of what Python + librdkafka allow on this broker.
"""

from __future__ import annotations

import io
from typing import Any

import fastavro
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from benchmarks.contenders.common import Window, arguments, write_result
from schemas.codec import default_codec

HEADER_BYTES = 5


def main() -> None:
    args = arguments(__doc__ or "")
    codec = default_codec()
    readers = {schema.schema_id: fastavro.parse_schema(schema.parsed) for schema in codec.schemas}
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap_servers,
            "group.id": f"{args.output_prefix}-raw",
            "enable.auto.commit": False,
            "log_level": 3,
        }
    )
    # assign(): no group join, the loop reads the partitions straight away.
    consumer.assign(
        [
            TopicPartition(f"{args.input_prefix}.{suffix}", partition, OFFSET_BEGINNING)
            for suffix in ("scans", "manifests")
            for partition in range(args.partitions)
        ]
    )
    state: dict[bytes, Any] = {}
    window = Window()
    consumed = 0
    while consumed < args.inputs:
        messages = consumer.consume(5000, timeout=1.0)
        if messages:
            window.start()
        for message in messages:
            if message.error():
                continue
            data = message.value()
            schema_id = int.from_bytes(data[1:HEADER_BYTES], "big")
            buffer = io.BytesIO(data)
            buffer.seek(HEADER_BYTES)
            record = fastavro.schemaless_reader(buffer, readers[schema_id], None)
            state[message.key()] = (record.get("code"), record["event_time_ms"])
            consumed += 1
    window.mark()
    write_result(args.result, window.result(consumed, consumed))
    consumer.close()


if __name__ == "__main__":
    main()
