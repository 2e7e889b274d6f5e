"""Poison and hostile input: malformed Avro, unknown schema ids, invalid UTF-8, huge fields and
tracking numbers carrying Redis, HTML or script injections. Each record goes to the dead-letter topic
with its reason (or is refused at the edge, the gateway); the pipeline keeps running and processes
the good records published after them; the tracking page escapes everything it shows."""

from __future__ import annotations

import asyncio
import struct
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import redis
from confluent_kafka import Producer
from redis.asyncio import Redis as AsyncRedis

from consumers.notifier.model import new_subscription
from consumers.notifier.store import SubscriptionStore
from consumers.read_model import Keys
from consumers.settings import ConsumerSettings
from producers.gateway.app import create_app as create_gateway_app
from producers.gateway.keys import KeyStore
from producers.gateway.settings import GatewaySettings
from producers.publisher import Publisher
from schemas.codec import default_codec
from schemas.topics import KEY_PARTITIONER, TopicNames
from tests.consumers.helpers import parcel_state
from tests.consumers.notifier.conftest import WebhookReceiver, status_update
from tests.producers.gateway.conftest import scan as gateway_scan
from tests.producers.gateway.conftest import start_server, stop_server
from tests.stages import StageLauncher, TopicReader, wait_for
from tests.streams.builders import HOUR, T0, scan, shipment

pytestmark = pytest.mark.e2e

CODEC = default_codec()
INJECTED_TRACKING_NUMBERS = (
    "*",  # a Redis glob
    "LX1:parcel:*",  # a key separator and a glob
    "LX1\r\nFLUSHALL\r\n",  # Redis protocol injection
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "LX1' OR '1'='1",
)
HUGE = 600_000  # characters: well within a Kafka message, far beyond any real field


def schema_id(record_name: str) -> int:
    return CODEC.latest(record_name).schema_id


def with_invalid_utf8(record_name: str, value: dict[str, Any], marker: str) -> bytes:
    """A well-framed Avro record whose string ``marker`` is replaced by bytes that are not UTF-8."""
    encoded = CODEC.encode(record_name, value)
    assert encoded.count(marker.encode()) == 1
    return encoded.replace(marker.encode(), b"\xff\xfe" * (len(marker) // 2))


def hostile_scans() -> list[tuple[bytes, bytes]]:
    """(key, value) pairs for the scans topic, each one of them poison."""
    good_body = CODEC.encode("ScanEvent", scan("ORDER_CREATED", T0, "ok", tracking_number="LX000000001BE"))[5:]
    records = [
        (b"LXTRUNCATED1", struct.pack(">bI", 0, schema_id("ScanEvent")) + good_body[: len(good_body) // 2]),
        (b"LXUNKNOWN01", struct.pack(">bI", 0, 987_654) + good_body),
        (b"LXMAGIC0001", b"\x07" + good_body),
        (
            b"LXUTF8000001",
            with_invalid_utf8(
                "ScanEvent", scan("ORDER_CREATED", T0, "UTF8UTF8", tracking_number="LXUTF8000001"), "UTF8UTF8"
            ),
        ),
    ]
    for tracking_number in INJECTED_TRACKING_NUMBERS:
        value = scan(
            "ORDER_CREATED", T0, f"inj-{len(records)}", tracking_number=tracking_number, with_shipment=shipment()
        )
        records.append((tracking_number.encode(), CODEC.encode("ScanEvent", value)))
    huge = scan("ORDER_CREATED", T0, "huge-1", tracking_number="LXHUGE00001", with_shipment=shipment())
    huge["reason"] = "x" * HUGE
    # A second huge scan of the same parcel: its state (history with both reasons) outgrows a Kafka message.
    huge_again = scan("ORIGIN_RECEIVED", T0 + HOUR, "huge-1b", tracking_number="LXHUGE00001")
    huge_again["reason"] = "y" * HUGE
    huge_code = scan("ORIGIN_RECEIVED", T0 + HOUR, "huge-2", tracking_number="LXHUGE00002")
    huge_code["code"] = "C" * HUGE
    records += [
        (b"LXHUGE00001", CODEC.encode("ScanEvent", huge)),
        (b"LXHUGE00002", CODEC.encode("ScanEvent", huge_code)),
    ]
    return records


def produce(bootstrap_servers: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap_servers,
            "partitioner": KEY_PARTITIONER,
            "acks": "all",
            "message.max.bytes": 2_000_000,
            "log_level": 3,
        }
    )
    for key, value in records:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0


def test_poison_records_are_dead_lettered_with_reasons_and_good_ones_still_flow(
    bootstrap_servers: str,
    topics: TopicNames,
    stages: StageLauncher,
    readers: Callable[[str], TopicReader],
    webhook_receiver: WebhookReceiver,
    redis_url: str,
    redis_prefix: str,
) -> None:
    client = redis.Redis.from_url(redis_url)
    url = webhook_receiver.url("/hooks", "hostile-secret")
    SubscriptionStore(client, redis_prefix).add(
        new_subscription(scope="merchant", target="shop-1", channel="webhook", address=url, secret="hostile-secret")
    )
    worker = stages.worker(topics)
    projector = stages.projector(topics, redis_url, redis_prefix)
    notifier = stages.notifier(topics, redis_url, redis_prefix)
    processes = [worker, projector, notifier]

    scans = hostile_scans()
    produce(bootstrap_servers, topics.scans, scans)
    states = [
        (b"LXGARBAGE01", b"\x00\x00\x00\x00\x01garbage"),
        (
            b"LXSTATEUTF8",
            with_invalid_utf8("ParcelState", parcel_state("LXSTATEUTF8", 1, sub_status="BADBAD"), "BADBAD"),
        ),
        (b"LXUNKNOWNST", CODEC.encode("ParcelState", parcel_state("LXUNKNOWNST", 1, "Teleported"))),
    ] + [(tn.encode(), CODEC.encode("ParcelState", parcel_state(tn, 1))) for tn in INJECTED_TRACKING_NUMBERS]
    produce(bootstrap_servers, topics.parcel_state, states)
    updates = [
        (b"LXGARBAGE02", b"\x13not avro"),
        (
            b"LXUPDATEUTF",
            with_invalid_utf8(
                "StatusUpdate",
                status_update("LXUPDATEUTF", 1, "InTransit", "shop-1") | {"sub_status": "BADBAD"},
                "BADBAD",
            ),
        ),
    ]
    produce(bootstrap_servers, topics.status_updates, updates)

    # The good parcel, published after all of it, must come through every stage.
    publisher = Publisher(bootstrap_servers, topics)
    publisher.publish_scan(
        scan("ORDER_CREATED", T0, "good-1", tracking_number="LX000000777BE", with_shipment=shipment())
    )
    publisher.publish_scan(scan("ORIGIN_RECEIVED", T0 + HOUR, "good-2", tracking_number="LX000000777BE"))
    assert publisher.flush().ok
    keys = Keys(redis_prefix)
    wait_for(
        lambda: client.hget(keys.parcel("LX000000777BE"), "version") == b"2", 90, "the good parcel in Redis", processes
    )
    wait_for(
        lambda: {d.body["tracking_number"] for d in webhook_receiver.delivered("/hooks")} >= {"LX000000777BE"},
        60,
        "the good parcel's notification",
        processes,
    )

    dead_letters = readers(topics.dead_letters)
    expected_streams = 4 + 3  # four undecodable scans and three huge ones (and the injected numbers, below)
    wait_for(
        lambda: dead_letters.poll() and len({d["source_topic"] for d in dead_letters.values()}) == 3,
        60,
        "dead letters from every stage",
        processes,
    )
    by_stage = Counter((d["stage"], d["source_topic"]) for d in dead_letters.values())
    reasons = {(d["stage"], d["key"]): (d["reason_code"], d["reason"]) for d in dead_letters.values()}
    print(f"\nhostile input: dead letters by stage {dict(by_stage)}")
    for (stage, key), (code, reason) in sorted(reasons.items(), key=str):
        print(f"  {stage:9} {str(key)[:40]:42} {code:24} {reason[:90]}")

    assert reasons[("streams", b"LXTRUNCATED1")][0] == "corrupt_body"
    assert reasons[("streams", b"LXUNKNOWN01")][0] == "unknown_schema_id"
    assert reasons[("streams", b"LXMAGIC0001")][0] == "bad_magic_byte"
    assert reasons[("streams", b"LXUTF8000001")][0] == "corrupt_body"
    # Huge fields are refused before they can grow a parcel's state past Kafka's message limit.
    assert reasons[("streams", b"LXHUGE00001")][0] == "oversized_record"
    assert reasons[("streams", b"LXHUGE00002")][0] == "oversized_record"
    assert by_stage[("streams", topics.scans)] >= expected_streams - 2
    for tracking_number in INJECTED_TRACKING_NUMBERS:
        assert reasons[("streams", tracking_number.encode())][0] == "invalid_identifier"  # as scans
        assert reasons[("projector", tracking_number.encode())][0] == "invalid_tracking_number"  # as states
    assert reasons[("projector", b"LXGARBAGE01")][0] == "undecodable"
    assert reasons[("projector", b"LXUNKNOWNST")][0] == "unknown_status"
    assert ("projector", b"LXSTATEUTF8") in reasons
    assert reasons[("notifier", b"LXGARBAGE02")][0] == "bad_magic_byte"
    assert ("notifier", b"LXUPDATEUTF") in reasons
    assert all(d["reason"] for d in dead_letters.values())

    # Nothing hostile became a key of the read model, and every stage still runs.
    stored = [key.decode(errors="replace") for key in client.scan_iter(match=f"{redis_prefix}:*", count=1000)]
    assert not [key for key in stored if any(char in key for char in "*<>\"' \r\n")], stored
    assert all(process.alive for process in processes)
    client.close()


@pytest.fixture
def gateway_url(bootstrap_servers: str, topics: TopicNames, redis_url: str, redis_prefix: str) -> Iterator[str]:
    settings = GatewaySettings(
        bootstrap_servers=bootstrap_servers,
        topic_prefix=topics.prefix,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        gateway_max_body_bytes=200_000,
    )
    server, thread, url = start_server(create_gateway_app(settings))
    try:
        yield url
    finally:
        stop_server(server, thread)


def create_key(redis_url: str, redis_prefix: str) -> str:
    async def run() -> str:
        client = AsyncRedis.from_url(redis_url, decode_responses=True)
        try:
            return (await KeyStore(client, redis_prefix).create("CK", ["flight"])).key
        finally:
            await client.aclose()

    return asyncio.run(run())


def test_the_gateway_refuses_hostile_batches_at_the_edge_and_accepts_the_next_good_one(
    gateway_url: str, redis_url: str, redis_prefix: str, topics: TopicNames, readers: Callable[[str], TopicReader]
) -> None:
    key = create_key(redis_url, redis_prefix)
    hostile: list[tuple[str, bytes | dict[str, Any]]] = [
        *(
            (f"tracking number {tn!r}", {"records": [gateway_scan("1", tracking_number=tn)]})
            for tn in INJECTED_TRACKING_NUMBERS
        ),
        ("huge field", {"records": [gateway_scan("2", reason="x" * 300_000)]}),
        ("invalid UTF-8", b'{"records": [{"event_id": "\xff\xfe"}]}'),
        ("not JSON", b"\x00\x01\x02"),
    ]
    answers = {}
    with httpx.Client(base_url=gateway_url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        for what, body in hostile:
            response = (
                http.post("/v1/scans", json=body)
                if isinstance(body, dict)
                else http.post("/v1/scans", content=body, headers={"Content-Type": "application/json"})
            )
            answers[what] = response
        good = http.post("/v1/scans", json={"records": [gateway_scan("3")]})
    print("\ngateway answers to hostile batches:")
    for what, response in answers.items():
        print(f"  {what:50} {response.status_code} {response.text[:100]}")
    refused = {what: response for what, response in answers.items() if response.status_code != 202}
    assert {"huge field", "invalid UTF-8", "not JSON"} <= set(refused)
    assert all(400 <= response.status_code < 500 and response.json()["message"] for response in refused.values())
    # The gateway's native format takes any tracking number string; such records reach the topic as
    # plain data, and the projector dead-letters them (test above). They are published unchanged:
    accepted = len(answers) - len(refused)
    assert good.status_code == 202, good.text
    scans = readers(topics.scans)
    scans.poll()
    published = Counter(value["event_id"] for value in scans.values())
    assert published == Counter({"1": accepted, "3": 1})
    assert {value["tracking_number"] for value in scans.values() if value["event_id"] == "1"} <= set(
        INJECTED_TRACKING_NUMBERS
    )
    print(f"  refused at the edge: {len(refused)}; accepted as data (dead-lettered by the projector): {accepted}")


def test_the_tracking_page_escapes_hostile_tracking_numbers(
    tracking_server: Callable[[ConsumerSettings], str], redis_url: str, redis_prefix: str
) -> None:
    base_url = tracking_server(ConsumerSettings(redis_url=redis_url, redis_prefix=redis_prefix))
    pages = 0
    with httpx.Client(base_url=base_url, timeout=10) as http:
        for tracking_number in INJECTED_TRACKING_NUMBERS:
            page = http.get(f"/track/{quote(tracking_number, safe='')}")
            api = http.get(f"/v1/parcels/{quote(tracking_number, safe='')}", params={"postcode": "1000"})
            assert page.status_code in (200, 404, 422)
            if page.headers["content-type"].startswith("text/html"):
                assert page.text.count("<script") == 2 and page.text.count("</script>") == 2  # the page's own only
                pages += 1
            assert "<img" not in page.text
            assert api.status_code in (404, 422)
            assert tracking_number not in api.json()["detail"]  # the answer does not echo the input
    print(f"\ntracking page: {pages} pages for {len(INJECTED_TRACKING_NUMBERS)} hostile tracking numbers, no markup")
    assert pages >= len(INJECTED_TRACKING_NUMBERS) - 1
