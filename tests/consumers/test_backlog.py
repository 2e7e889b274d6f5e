"""The backlog per hub stage: the read model's stage indexes move with each parcel (pure plans), Redis
counts them without a scan, and a restarted projector exports the same gauges from Redis alone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis

from consumers.backlog import BacklogGauges, read_backlog
from consumers.projector import queue_plan
from consumers.read_model import (
    Keys,
    StoredIndexEntry,
    backlog_removals,
    plan_delete,
    plan_write,
    project,
)
from schemas.metrics import RouteLabels
from schemas.topics import TopicNames
from tests.consumers.helpers import BASE_TIME_MS, StateProducer, parcel_state
from tests.stages import StageLauncher, StageProcess, wait_for

KEYS = Keys("p")
HOUR = 3_600_000


def staged(tn: str, version: int, stage: str | None, entered_hours: int = 0, **overrides: Any) -> dict[str, Any]:
    return parcel_state(
        tn, version, stage=stage, stage_entered_ms=BASE_TIME_MS + entered_hours * HOUR if stage else None, **overrides
    )


def stored_of(state: dict[str, Any]) -> StoredIndexEntry:
    fields = project(state).fields
    return StoredIndexEntry.from_values([fields[name] for name in StoredIndexEntry.FIELDS])  # type: ignore[return-value]


def backlog_adds(plan: Any) -> set[tuple[str, str, int]]:
    return {addition for addition in plan.index_additions if ":backlog" in addition[0]}


def backlog_removes(plan: Any) -> set[tuple[str, str]]:
    return {removal for removal in plan.index_removals if ":backlog" in removal[0]}


def test_a_parcel_in_a_stage_joins_its_stage_and_route_backlogs_scored_by_entry_time() -> None:
    plan = plan_write(KEYS, project(staged("LX000000001CN", 2, "import_customs", 3)), None)
    assert plan is not None
    entered = BASE_TIME_MS + 3 * HOUR
    assert backlog_adds(plan) == {
        ("p:backlog:import_customs", "LX000000001CN", entered),
        ("p:backlog:import_customs:HGH-LGG-BE", "LX000000001CN", entered),
        ("p:backlog-routes:import_customs", "HGH-LGG-BE", 0),
    }
    assert backlog_removes(plan) == set()


def test_moving_to_the_next_stage_leaves_the_previous_backlog_and_leaving_all_stages_leaves_none() -> None:
    customs = staged("LX000000001CN", 2, "import_customs", 3)
    hub = staged("LX000000001CN", 3, "hub", 5)
    plan = plan_write(KEYS, project(hub), stored_of(customs))
    assert plan is not None
    assert backlog_removes(plan) == {
        ("p:backlog:import_customs", "LX000000001CN"),
        ("p:backlog:import_customs:HGH-LGG-BE", "LX000000001CN"),
    }
    assert {key for key, _tn, _score in backlog_adds(plan)} >= {"p:backlog:hub", "p:backlog:hub:HGH-LGG-BE"}
    delivered = plan_write(KEYS, project(staged("LX000000001CN", 4, None)), stored_of(hub))
    assert delivered is not None
    assert backlog_adds(delivered) == set()
    assert backlog_removes(delivered) == {
        ("p:backlog:hub", "LX000000001CN"),
        ("p:backlog:hub:HGH-LGG-BE", "LX000000001CN"),
    }


def test_staying_in_a_stage_keeps_the_membership_and_follows_a_moved_entry_time() -> None:
    before = staged("LX000000001CN", 2, "hub", 5)
    after = staged("LX000000001CN", 3, "hub", 4)  # a late scan: the parcel entered the hub earlier
    plan = plan_write(KEYS, project(after), stored_of(before))
    assert plan is not None
    assert backlog_removes(plan) == set()
    assert ("p:backlog:hub", "LX000000001CN", BASE_TIME_MS + 4 * HOUR) in backlog_adds(plan)


def test_a_route_change_moves_the_route_backlog() -> None:
    before = staged("LX000000001CN", 2, "hub", 5, route="CN-BE")
    after = staged("LX000000001CN", 3, "hub", 5)
    plan = plan_write(KEYS, project(after), stored_of(before))
    assert plan is not None
    assert backlog_removes(plan) == {("p:backlog:hub:CN-BE", "LX000000001CN")}


def test_deleting_a_parcel_removes_it_from_its_backlog() -> None:
    stored = stored_of(staged("LX000000001CN", 2, "last_mile", 5))
    plan = plan_delete(KEYS, "LX000000001CN", stored)
    assert plan is not None
    assert backlog_removes(plan) == set(backlog_removals(KEYS, "LX000000001CN", "last_mile", "HGH-LGG-BE"))
    assert len(backlog_removes(plan)) == 2


def test_an_unknown_stage_is_no_stage() -> None:
    fields = project(staged("LX000000001CN", 2, "somewhere", 5)).fields
    assert (fields["stage"], fields["stage_entered_ms"]) == ("", "")


def test_read_backlog_counts_per_stage_and_route_and_finds_the_oldest(redis_url: str, redis_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    keys = Keys(redis_prefix)
    states = [
        staged("LX000000001CN", 2, "hub", 5),
        staged("LX000000002CN", 2, "hub", 2, route="CN-BE"),
        staged("LX000000003CN", 2, "import_customs", 1),
    ]
    stored: dict[str, StoredIndexEntry] = {}
    with client.pipeline(transaction=True) as pipe:
        for state in states:
            plan = plan_write(keys, project(state), None)
            assert plan is not None
            queue_plan(pipe, plan)
            stored[state["tracking_number"]] = stored_of(state)
        pipe.execute()
    # One parcel leaves the hub: its route empties.
    move = plan_write(keys, project(staged("LX000000002CN", 3, "last_mile", 9, route="CN-BE")), stored["LX000000002CN"])
    assert move is not None
    with client.pipeline(transaction=True) as pipe:
        queue_plan(pipe, move)
        pipe.execute()

    backlog = read_backlog(client, keys, wall_ms=BASE_TIME_MS + 10 * HOUR)
    by_stage = {stage.stage: stage for stage in backlog.stages}
    assert (by_stage["hub"].parcels, by_stage["hub"].routes) == (1, {"HGH-LGG-BE": 1})
    assert by_stage["hub"].oldest_seconds(backlog.now_ms) == 5 * 3600
    assert by_stage["import_customs"].oldest_seconds(backlog.now_ms) == 9 * 3600
    assert by_stage["last_mile"].routes == {"CN-BE": 1}
    assert (by_stage["linehaul"].parcels, by_stage["linehaul"].oldest_entered_ms) == (0, None)
    client.close()


def test_gauges_bound_routes_and_show_an_emptied_route_as_zero(redis_url: str, redis_prefix: str) -> None:
    from consumers import metrics
    from consumers.backlog import Backlog, StageBacklog

    gauges = BacklogGauges(RouteLabels(limit=1))
    stage = "export_customs"
    gauges.export(Backlog([StageBacklog(stage, 3, {"AAA-BE": 1, "BBB-BE": 2}, BASE_TIME_MS)], BASE_TIME_MS + HOUR))
    assert metrics.BACKLOG_PARCELS.labels(stage, "AAA-BE")._value.get() == 1
    assert metrics.BACKLOG_PARCELS.labels(stage, "other")._value.get() == 2
    assert metrics.BACKLOG_OLDEST.labels(stage)._value.get() == 3600
    gauges.export(Backlog([StageBacklog(stage, 0, {}, None)], BASE_TIME_MS + HOUR))
    assert metrics.BACKLOG_PARCELS.labels(stage, "AAA-BE")._value.get() == 0
    assert metrics.BACKLOG_OLDEST.labels(stage)._value.get() == 0


def backlog_gauges(process: StageProcess) -> tuple[float, ...] | None:
    """(hub, last mile, import customs) parcels on the process's /metrics; None until it answers."""
    try:
        return tuple(
            process.metric_total("parcelstream_backlog_parcels", stage=stage)
            for stage in ("hub", "last_mile", "import_customs")
        )
    except httpx.HTTPError:
        return None


@pytest.mark.integration
def test_a_restarted_projector_exports_the_same_backlog_from_redis(
    stages: StageLauncher,
    topics: TopicNames,
    topics_factory: Callable[..., TopicNames],
    redis_url: str,
    redis_prefix: str,
    bootstrap_servers: str,
) -> None:
    StateProducer(bootstrap_servers, topics).send(
        staged("LX000000001CN", 2, "hub", 1),
        staged("LX000000002CN", 2, "hub", 3),
        staged("LX000000002CN", 3, "last_mile", 4),
        staged("LX000000003CN", 2, "import_customs", 2),
    )
    first = stages.projector(topics, redis_url, redis_prefix)
    wait_for(lambda: backlog_gauges(first) == (1, 1, 1), 90, "the first projector's backlog", [first])
    oldest_hub = first.metric_total("parcelstream_backlog_oldest_seconds", stage="hub")
    assert oldest_hub >= 3 * 3600  # entered at +1 h; the newest event is at +4 h (or the wall clock, later)
    first.stop()

    # The restarted projector reads empty topics: its gauges can only come from Redis.
    second = stages.projector(topics_factory(), redis_url, redis_prefix)
    wait_for(lambda: backlog_gauges(second) == (1, 1, 1), 90, "the restarted projector's backlog", [second])
    assert second.metric_total("parcelstream_backlog_oldest_seconds", stage="hub") >= oldest_hub
