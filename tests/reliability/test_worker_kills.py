"""Fault injection: the stream-processor worker is SIGKILLed at random points of a simulator run and
restarted. Every parcel must end in the state an uninterrupted run reaches, no scan may be lost, and
the real webhook receiver behind the notifier must count exactly one delivery per status update."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import redis
from confluent_kafka import Consumer, TopicPartition

from consumers.notifier.model import new_subscription
from consumers.notifier.store import SubscriptionStore
from producers.simulator import SimulationConfig, simulate
from producers.simulator.model import Simulation
from schemas.topics import TopicNames
from streams.core.taxonomy import classify
from tests.consumers.notifier.conftest import WebhookReceiver
from tests.stages import StageLauncher, TopicReader, publish_records, wait_for

pytestmark = pytest.mark.e2e

SEED = 20_260_111
PARCELS = 60
KILLS = 2
SIM_START_MS = 1_767_225_600_000  # fixed: the same journeys every run
WEBHOOK_SECRET = "reliability-secret"
#: ParcelState fields that depend on the wall-clock-driven SLA clock, not on the scans (a restarted
#: worker's clock restarts from the event times it sees), so two correct runs may differ in them.
CLOCK_DEPENDENT_FIELDS = frozenset({"open_sla", "on_time", "estimated_delivery"})


def merchants_of(sim: Simulation) -> set[str]:
    return {
        record.value["shipment"]["merchant"]
        for record in sim.records
        if record.kind == "scan" and record.value.get("shipment") and record.value["shipment"].get("merchant")
    }


def comparable(state: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in state.items() if name not in CLOCK_DEPENDENT_FIELDS}


def lost_scans(sim: Simulation, states: dict[str, dict[str, Any]]) -> int:
    """Scans that reach a parcel in truth but are missing from its final history."""
    missing = 0
    for tracking_number, truth in sim.truth.items():
        applied = {entry["event_id"] for entry in states.get(tracking_number, {}).get("history", [])}
        missing += len(set(truth.event_ids) - applied)
    return missing


def matches_truth(sim: Simulation, states: dict[str, dict[str, Any]]) -> bool:
    return lost_scans(sim, states) == 0 and all(
        states[tn]["status"] == classify(truth.final_code).status for tn, truth in sim.truth.items()
    )


def group_caught_up(bootstrap_servers: str, group_id: str, topic: str, end_offsets: int) -> bool:
    probe = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group_id, "log_level": 0})
    try:
        partitions = probe.list_topics(topic, timeout=10).topics[topic].partitions
        committed = probe.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return sum(max(tp.offset, 0) for tp in committed) >= end_offsets
    finally:
        probe.close()


def test_worker_killed_repeatedly_ends_in_the_uninterrupted_states_with_one_notification_per_update(
    bootstrap_servers: str,
    topics_factory: Callable[..., TopicNames],
    stages: StageLauncher,
    readers: Callable[[str], TopicReader],
    webhook_receiver: WebhookReceiver,
    redis_url: str,
    redis_prefix: str,
) -> None:
    rng = random.Random(SEED)
    sim = simulate(SimulationConfig(seed=SEED, parcels=PARCELS, start_ms=SIM_START_MS))
    reference_topics, topics = topics_factory(partitions=4), topics_factory(partitions=4)

    # Customers: one webhook subscription per merchant of the simulation, on the killed run only.
    url = webhook_receiver.url("/hooks", WEBHOOK_SECRET)
    client = redis.Redis.from_url(redis_url)
    try:
        store = SubscriptionStore(client, redis_prefix)
        for merchant in sorted(merchants_of(sim)):
            store.add(
                new_subscription(
                    scope="merchant", target=merchant, channel="webhook", address=url, secret=WEBHOOK_SECRET
                )
            )
    finally:
        client.close()
    notifier_group = f"{redis_prefix}-notifier"
    notifier = stages.notifier(
        topics, redis_url, redis_prefix, group_id=notifier_group, notifier_endpoint_concurrency="16"
    )

    # The uninterrupted reference run, on its own prefix.
    reference_worker = stages.worker(reference_topics, name="reference")
    worker = stages.worker(topics, name="worker-0")  # joins while the reference runs
    publish_records(bootstrap_servers, reference_topics, sim.records)
    reference_states = readers(reference_topics.parcel_state)
    wait_for(
        lambda: reference_states.poll() and matches_truth(sim, reference_states.latest_by_key()),
        120,
        "the reference run's final states",
        [reference_worker],
    )
    reference_worker.stop()
    reference_outputs = len(reference_states.records)

    # The run under fault: everything published, the worker killed at random output counts.
    published = publish_records(bootstrap_servers, topics, sim.records)
    states = readers(topics.parcel_state)
    kill_points = sorted(rng.uniform(0.1, 0.8) for _ in range(KILLS))
    outputs_at_kill = []
    for number, fraction in enumerate(kill_points, start=1):
        target = int(fraction * reference_outputs)
        wait_for(lambda t=target: states.poll() >= t, 120, f"{target} parcel states before kill {number}", [worker])
        worker.kill()
        outputs_at_kill.append(len(states.records))
        worker = stages.worker(topics, name=f"worker-{number}")
    wait_for(
        lambda: states.poll() and matches_truth(sim, states.latest_by_key()),
        180,
        "the final states after the kills",
        [worker, notifier],
    )

    final = states.latest_by_key()
    reference = reference_states.latest_by_key()
    assert set(final) == set(reference) == set(sim.truth)
    differing = [tn for tn in reference if comparable(final[tn]) != comparable(reference[tn])]
    assert differing == [], f"{len(differing)} parcels differ from the uninterrupted run, e.g. {differing[:3]}"
    assert lost_scans(sim, final) == 0

    # Status updates: re-processing after a kill repeats updates with the same id and content (checked
    # after the figures below are printed).
    updates = readers(topics.status_updates)
    updates.poll()
    by_id: dict[str, dict[str, Any]] = {}
    conflicting: dict[str, list[str]] = {}
    for update in updates.values():
        first = by_id.setdefault(update["update_id"], update)
        if first != update:
            conflicting[update["update_id"]] = [
                f"{k}: {first[k]!r} → {update[k]!r}" for k in update if first[k] != update[k]
            ]
    reference_updates = readers(reference_topics.status_updates)
    reference_updates.poll()
    assert set(by_id) == {update["update_id"] for update in reference_updates.values()}

    # Notifications: exactly one delivery per update, counted by the receiver.
    wait_for(
        lambda: len({d.idempotency_key for d in webhook_receiver.delivered("/hooks")}) >= len(by_id),
        120,
        f"{len(by_id)} webhook deliveries",
        [notifier],
    )
    wait_for(
        lambda: group_caught_up(bootstrap_servers, notifier_group, topics.status_updates, len(updates.records)),
        60,
        "the notifier to commit every status update",
        [notifier],
    )
    deliveries = webhook_receiver.delivered("/hooks")
    per_update = Counter(delivery.body["update_id"] for delivery in deliveries)
    per_key = Counter(delivery.idempotency_key for delivery in deliveries)
    duplicates = sum(count - 1 for count in per_key.values())
    assert set(per_update) == set(by_id)
    assert duplicates == 0 and max(per_update.values()) == 1
    assert all(delivery.verified for delivery in deliveries)
    scans = sum(record.kind == "scan" for record in sim.records)
    print(
        f"\nworker kills: {KILLS} SIGKILLs at {outputs_at_kill} parcel-state outputs "
        f"(uninterrupted run: {reference_outputs}); records published {published} ({scans} scans, "
        f"{published - scans} manifests); parcels {len(final)}; parcel-state records {len(states.records)} "
        f"(re-emitted after kills: {len(states.records) - reference_outputs}); scans lost {lost_scans(sim, final)}; "
        f"states differing from the uninterrupted run {len(differing)}; status updates {len(updates.records)} "
        f"records / {len(by_id)} distinct / {len(conflicting)} re-emitted with other content; webhook deliveries "
        f"{len(deliveries)}; duplicates {duplicates}"
    )
    assert conflicting == {}, (
        f"{len(conflicting)} update ids re-emitted with other content, e.g. {next(iter(conflicting.items()), None)}"
    )
