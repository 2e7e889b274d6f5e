"""The raw loop with aiokafka (uvloop): getmany(max_records=5000) + fastavro decode + one dict
update per record. No framework, no output."""

from __future__ import annotations

import io
from typing import Any

import fastavro
import uvloop
from aiokafka import AIOKafkaConsumer, TopicPartition

from benchmarks.contenders.common import Window, arguments, write_result
from schemas.codec import default_codec

HEADER_BYTES = 5


async def run() -> None:
    args = arguments(__doc__ or "")
    codec = default_codec()
    readers = {schema.schema_id: fastavro.parse_schema(schema.parsed) for schema in codec.schemas}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=args.bootstrap_servers, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    partitions = [
        TopicPartition(f"{args.input_prefix}.{suffix}", partition)
        for suffix in ("scans", "manifests")
        for partition in range(args.partitions)
    ]
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    state: dict[bytes, Any] = {}
    window = Window()
    consumed = 0
    try:
        while consumed < args.inputs:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            if batches:
                window.start()
            for messages in batches.values():
                for message in messages:
                    data = message.value
                    schema_id = int.from_bytes(data[1:HEADER_BYTES], "big")
                    buffer = io.BytesIO(data)
                    buffer.seek(HEADER_BYTES)
                    record = fastavro.schemaless_reader(buffer, readers[schema_id], None)
                    state[message.key] = (record.get("code"), record["event_time_ms"])
                    consumed += 1
        window.mark()
        write_result(args.result, window.result(consumed, consumed))
    finally:
        await consumer.stop()


def main() -> None:
    uvloop.run(run())


if __name__ == "__main__":
    main()
