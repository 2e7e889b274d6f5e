"""Worker outputs do not vanish silently: the agent's ``publish`` returns only once the broker
acknowledged every output, and raises when one was not delivered (the batch then fails before
its offsets are committed). Enqueueing alone succeeds while the broker is gone; the real
producer of the worker's Faust app is used on a broker of the test's own, which it stops."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from deploy.embedded import EmbeddedBroker
from streams.settings import WorkerSettings
from streams.worker.app import create_app
from streams.worker.outputs import publish
from streams.worker.processor import Output
from tests.conftest import unique

pytestmark = pytest.mark.integration


@pytest.fixture
def own_broker() -> Iterator[EmbeddedBroker]:
    broker = EmbeddedBroker()
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def test_outputs_publish_raises_when_an_output_is_not_delivered(own_broker: EmbeddedBroker) -> None:
    prefix = unique("outputs")

    async def run() -> None:
        app = create_app(WorkerSettings(bootstrap_servers=own_broker.bootstrap_servers, topic_prefix=prefix))
        app.conf.producer_request_timeout = 3.0  # fail fast once the broker is gone
        producer = app.producer
        await producer.start()
        try:
            await publish(producer, [Output(f"{prefix}.parcel-state", b"k", b"delivered")])
            own_broker.stop()
            # Enqueueing still works (the producer buffers); only the delivery can tell.
            enqueued = await producer.send(f"{prefix}.parcel-state", b"k", b"lost", None, None, None)
            with pytest.raises(Exception, match=r"NodeNotReady|Timeout|Connection"):
                await asyncio.wait_for(enqueued, 30)
            with pytest.raises(Exception, match=r"NodeNotReady|Timeout|Connection"):
                outputs = [Output(f"{prefix}.parcel-state", b"k", b"lost", (("parcelstream-fanout-path", b"BAG1"),))]
                await asyncio.wait_for(publish(producer, outputs), 30)
        finally:
            await producer.stop()

    asyncio.run(run())
