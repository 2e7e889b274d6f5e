"""The naive Faust version, the starting point: one agent, one event at a time, the pure core
(``streams.worker.processor.Processor``: apply_scan / consolidation) against Faust tables, every output
awaited on its own and one table write per event. Same Faust app settings as the worker
(``streams.worker.app.create_app``), its own app id, tables and output topics (``--output-prefix``).

Done when every input record was consumed and nothing was processed for ``IDLE_SECONDS``
(the fan-out copies have come back through ``<output prefix>.scans-fanout`` by then).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import faust
import mode.loop

from benchmarks.contenders.common import Window, arguments, write_result
from schemas.topics import TopicNames
from streams.core.clock import EventClock
from streams.core.rules import SlaRules
from streams.settings import WorkerSettings
from streams.worker.app import create_app
from streams.worker.processor import Processor, SourceMessage

IDLE_SECONDS = 3.0
CHANGELOG_CONFIG = {"cleanup.policy": "compact", "retention.ms": "-1"}


def main() -> None:
    args = arguments(__doc__ or "")
    settings = WorkerSettings(
        bootstrap_servers=args.bootstrap_servers,
        topic_prefix=args.output_prefix,
        partitions=args.partitions,
        data_dir=Path(tempfile.mkdtemp(prefix="naive-faust-")),
        log_level="warning",
    )
    inputs, outputs = TopicNames(args.input_prefix), TopicNames(args.output_prefix)
    mode.loop.use("uvloop")
    app = create_app(settings)
    processor = Processor(outputs, SlaRules(), EventClock(1.0))
    source = app.topic(inputs.scans, inputs.manifests, outputs.scans_fanout, key_type=bytes, value_type=bytes)
    sinks = {
        name: app.topic(name, key_type=bytes, value_type=bytes)
        for name in (
            outputs.parcel_state,
            outputs.status_updates,
            outputs.sla_events,
            outputs.scans_fanout,
            outputs.dead_letters,
        )
    }
    parcels = app.Table("parcels", key_type=str, value_type=bytes, extra_topic_configs=CHANGELOG_CONFIG)
    units = app.Table("units", key_type=str, value_type=bytes, extra_topic_configs=CHANGELOG_CONFIG)
    window = Window()
    counts = {"inputs": 0, "state_updates": 0, "written": 0}
    fanout_topic = outputs.scans_fanout

    @app.agent(source, name="naive")
    async def process(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            window.start()
            message = event.message
            if message.topic != fanout_topic:
                counts["inputs"] += 1
            source_message = SourceMessage(message.topic, message.partition, message.offset, message.key, message.value)
            result = processor.handle(source_message, parcels, units, time.time_ns() // 1_000_000)
            for output in result.outputs:
                await sinks[output.topic].send(key=output.key, value=output.value)
                if output.topic == outputs.parcel_state:
                    counts["state_updates"] += 1
            result.write_state(parcels, units)
            window.mark()

    @app.timer(0.5)
    async def finish_when_idle() -> None:
        if counts["written"] or counts["inputs"] < args.inputs:
            return
        if time.perf_counter() - window.last >= IDLE_SECONDS:
            counts["written"] = 1
            write_result(args.result, window.result(counts["inputs"], counts["state_updates"]))

    faust.Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
