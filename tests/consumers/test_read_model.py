"""The read model's pure parts: tracking-number validation, keys, projection, write plans, public view."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.projector import reduce_batch
from consumers.read_model import (
    InvalidRecordError,
    Keys,
    StoredIndexEntry,
    WritePlan,
    latest_per_parcel,
    normalize_tracking_number,
    plan_delete,
    plan_write,
    postcode_hash,
    project,
    public_view,
)
from schemas.codec import default_codec
from schemas.statuses import STATUSES
from tests.consumers.helpers import parcel_state

KEYS = Keys("pfx")


class MemoryStore:
    """Applies write plans the way Redis would, to check what the plans leave behind."""

    def __init__(self) -> None:
        self.hashes: dict[str, dict[str, str]] = {}
        self.sorted_sets: dict[str, dict[str, int]] = {}
        self.published: list[tuple[str, str]] = []

    def stored(self, tracking_number: str) -> StoredIndexEntry | None:
        fields = self.hashes.get(KEYS.parcel(tracking_number), {})
        return StoredIndexEntry.from_values([fields.get(name) for name in StoredIndexEntry.FIELDS])

    def apply(self, plan: WritePlan | None) -> None:
        if plan is None:
            return
        if plan.delete_hash:
            self.hashes.pop(plan.hash_key, None)
        if plan.hash_fields:
            self.hashes.setdefault(plan.hash_key, {}).update(plan.hash_fields)
        for key, member in plan.index_removals:
            self.sorted_sets.get(key, {}).pop(member, None)
            if not self.sorted_sets.get(key, True):
                del self.sorted_sets[key]
        for key, member, score in plan.index_additions:
            self.sorted_sets.setdefault(key, {})[member] = score
        if plan.publish:
            self.published.append(plan.publish)

    def project(self, state: dict[str, Any]) -> None:
        projected = project(state, b"memory-store-key")
        self.apply(plan_write(KEYS, projected, self.stored(projected.tracking_number)))


@pytest.mark.parametrize("raw", ["LX123456785CN", "lx123456785cn", "12345678", "A" * 40])
def test_valid_tracking_numbers_are_upper_cased(raw: str) -> None:
    assert normalize_tracking_number(raw) == raw.upper()


@pytest.mark.parametrize(
    "raw", ["", "SHORT1", "A" * 41, "LX 123456785CN", "LX123*", "pfx:parcel:X1234567", "<script>alert(1)</script>"]
)
def test_anything_else_is_rejected_with_a_reason(raw: str) -> None:
    with pytest.raises(InvalidRecordError) as rejected:
        normalize_tracking_number(raw)
    assert rejected.value.reason_code == "invalid_tracking_number"
    assert "8 to 40" in rejected.value.reason


def test_index_keys_cannot_be_steered_by_values() -> None:
    key = KEYS.carrier_index("evil:*carrier")
    assert key.startswith("pfx:carrier:")
    assert "*" not in key
    assert key.count(":") == 2
    assert KEYS.route_index("HGH-LGG-BE") == "pfx:route:HGH-LGG-BE"


KEY = b"server-postcode-key"


def test_postcode_is_kept_only_as_a_keyed_hash_and_compares_loosely() -> None:
    assert postcode_hash(KEY, "LX123456785CN", "1000 bx") == postcode_hash(KEY, "LX123456785CN", "1000-BX")
    assert postcode_hash(KEY, "LX123456785CN", "1000BX") != postcode_hash(KEY, "LX123456785CO", "1000BX")
    fields = project(parcel_state("LX123456785CN", 1), KEY).fields
    assert fields["postcode_hash"] == postcode_hash(KEY, "LX123456785CN", "1000BX")
    assert "1000" not in json.dumps(fields)


def test_brute_the_postcode_hash_is_keyed_so_trying_postcodes_without_the_key_finds_nothing() -> None:
    stored = postcode_hash(KEY, "LX123456785CN", "1000BX")
    unkeyed = hashlib.sha256(b"LX123456785CN\x001000BX").hexdigest()  # what older versions stored
    assert unkeyed not in stored
    assert postcode_hash(b"another-key", "LX123456785CN", "1000BX") != stored
    assert postcode_hash(b"", "LX123456785CN", "1000BX") == ""  # no key: no hash, postcodes are off


def test_replaying_an_older_state_migrates_an_unkeyed_or_other_key_postcode_hash() -> None:
    store = MemoryStore()
    store.project(parcel_state("LX123456785CN", 3))
    store.hashes[KEYS.parcel("LX123456785CN")]["postcode_hash"] = hashlib.sha256(b"legacy").hexdigest()
    replayed = project(parcel_state("LX123456785CN", 2), KEY)
    plan = plan_write(KEYS, replayed, store.stored("LX123456785CN"))
    assert plan is not None and plan.hash_fields == {"postcode_hash": replayed.fields["postcode_hash"]}
    assert not plan.index_additions and plan.publish is None
    store.apply(plan)
    assert store.hashes[KEYS.parcel("LX123456785CN")]["version"] == "3"  # nothing else moved back
    assert plan_write(KEYS, replayed, store.stored("LX123456785CN")) is None  # once migrated, no more writes


def test_projection_sorts_history_by_event_time_and_rejects_unknown_statuses() -> None:
    state = parcel_state("LX123456785CN", 3)
    state["history"] = list(reversed(state["history"]))
    history = json.loads(project(state).fields["history"])
    assert [entry["event_time_ms"] for entry in history] == sorted(entry["event_time_ms"] for entry in state["history"])
    with pytest.raises(InvalidRecordError) as rejected:
        project(parcel_state("LX123456785CN", 1, status="Teleported"))
    assert rejected.value.reason_code == "unknown_status"


def test_a_new_parcel_joins_its_status_carrier_route_and_sla_indexes() -> None:
    store = MemoryStore()
    store.project(parcel_state("LX123456785CN", 2, open_sla=["hub_dwell:at_risk"]))
    assert set(store.sorted_sets) == {
        "pfx:status:InTransit",
        "pfx:carrier:bpost",
        "pfx:route:HGH-LGG-BE",
        "pfx:sla:hub_dwell%3Aat_risk",
    }
    assert store.published[0][0] == "pfx:updates:LX123456785CN"
    assert json.loads(store.published[0][1])["status"] == "InTransit"


def test_moving_between_statuses_keeps_indexes_exact() -> None:
    store = MemoryStore()
    store.project(parcel_state("LX123456785CN", 2, open_sla=["hub_dwell:at_risk"]))
    store.project(parcel_state("LX123456785CN", 3, status="OutForDelivery", carrier="dpd", open_sla=[]))
    assert set(store.sorted_sets) == {"pfx:status:OutForDelivery", "pfx:carrier:dpd", "pfx:route:HGH-LGG-BE"}
    assert store.hashes["pfx:parcel:LX123456785CN"]["status"] == "OutForDelivery"


def test_older_or_replayed_versions_plan_nothing() -> None:
    store = MemoryStore()
    store.project(parcel_state("LX123456785CN", 3, status="OutForDelivery"))
    newer = project(parcel_state("LX123456785CN", 3, status="OutForDelivery"))
    assert plan_write(KEYS, newer, store.stored("LX123456785CN")) is None
    older = project(parcel_state("LX123456785CN", 2))
    assert plan_write(KEYS, older, store.stored("LX123456785CN")) is None


def test_delete_leaves_no_index_membership() -> None:
    store = MemoryStore()
    store.project(parcel_state("LX123456785CN", 2, open_sla=["promise:breach"]))
    store.apply(plan_delete(KEYS, "LX123456785CN", store.stored("LX123456785CN")))
    assert store.hashes == {}
    assert store.sorted_sets == {}
    assert plan_delete(KEYS, "LX123456785CN", None) is None


def test_batches_fold_to_the_newest_state_and_respect_tombstones() -> None:
    v2, v3 = project(parcel_state("LX123456785CN", 2)), project(parcel_state("LX123456785CN", 3))
    assert latest_per_parcel([v3, v2]) == {"LX123456785CN": v3}
    folded = reduce_batch([("LX123456785CN", v3), ("LX123456785CN", None), ("LX123456785CN", v2)])
    assert folded["LX123456785CN"].delete is True
    assert folded["LX123456785CN"].state == v2
    assert reduce_batch([("LX123456785CN", v2), ("LX123456785CN", None)])["LX123456785CN"].state is None


def test_public_view_shows_customers_no_internal_fields() -> None:
    state = parcel_state("LX123456785CN", 2, status="OutForDelivery", on_time=False)
    view = public_view(project(state).fields)
    assert view["status"] == "OutForDelivery"
    assert view["on_time"] is False
    assert view["version"] == 2
    assert view["last_location"]["code"] == "LGG"
    assert len(view["history"]) == 2
    for hidden in ("postcode_hash", "merchant", "route", "open_sla"):
        assert hidden not in view
    assert "event_id" not in view["history"][0]


def test_customers_see_which_rules_make_a_parcel_late_but_not_internal_warnings() -> None:
    state = parcel_state("LX123456785CN", 2, open_sla=["silence:at_risk", "promise:breach", "customs_clearance:breach"])
    state["history"][-1]["reason"] = "IOSS number missing or invalid"
    view = public_view(project(state).fields)
    assert view["delay_reasons"] == ["customs_clearance", "promise"]
    assert view["history"][-1]["reason"] == "IOSS number missing or invalid"
    assert view["history"][0]["reason"] is None


def test_the_test_records_are_valid_parcel_states() -> None:
    assert default_codec().validate("ParcelState", parcel_state("LX123456785CN", 3)) == []


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(STATUSES),
            st.sampled_from(["bpost", "dpd", "postnl"]),
            st.lists(st.sampled_from(["promise:breach", "silence:at_risk", "hub_dwell:breach"]), max_size=2),
        ),
        min_size=1,
        max_size=6,
    ),
    order=st.randoms(use_true_random=False),
)
def test_any_arrival_order_gives_the_content_of_the_newest_state(
    steps: list[tuple[str, str, list[str]]], order: Any
) -> None:
    states = [
        parcel_state("LX123456785CN", version, status, carrier=carrier, open_sla=flags)
        for version, (status, carrier, flags) in enumerate(steps, start=1)
    ]
    in_order = MemoryStore()
    for state in states:
        in_order.project(state)
    shuffled = MemoryStore()
    arrival = list(states)
    order.shuffle(arrival)
    for state in arrival + arrival:  # and every state replayed
        shuffled.project(state)
    assert shuffled.hashes == in_order.hashes
    assert shuffled.sorted_sets == in_order.sorted_sets
    newest = steps[-1]
    assert f"pfx:status:{newest[0]}" in shuffled.sorted_sets
    assert len([key for key in shuffled.sorted_sets if key.startswith("pfx:status:")]) == 1
