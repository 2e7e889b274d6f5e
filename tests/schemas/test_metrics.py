"""``observe_all``: a batch's observations, as prometheus_client's ``observe`` of each value counts them."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from schemas.metrics import observe_all

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 24 * 3600)
#: Values on and around every bound, and anywhere.
VALUES = st.one_of(
    st.sampled_from([0.0, *BUCKETS, *(b + 1 / 64 for b in BUCKETS), *(b - 1 / 64 for b in BUCKETS if b > 1)]),
    st.integers(0, 200 * 24 * 3600 * 64).map(lambda n: n / 64),
)


def _sum(samples: list[tuple[str, dict[str, str], float]]) -> float:
    return next(value for name, _labels, value in samples if name == "lag_one_sum")


def _samples(histogram: Histogram) -> list[tuple[str, dict[str, str], float]]:
    return [
        (sample.name, sample.labels, sample.value)
        for metric in histogram.collect()
        for sample in metric.samples
        if not sample.name.endswith("_created")
    ]


@given(st.lists(st.lists(VALUES, max_size=30), max_size=4))
def test_observe_all_counts_as_observe_does(batches: list[list[float]]) -> None:
    one_by_one = Histogram("lag_one", "", ["stage"], buckets=BUCKETS, registry=CollectorRegistry())
    batched = Histogram("lag_one", "", ["stage"], buckets=BUCKETS, registry=CollectorRegistry())
    expected, child = one_by_one.labels("worker"), batched.labels("worker")
    for values in batches:
        for value in values:
            expected.observe(value)
        observe_all(child, values)
    # The same counts per bucket; the sum is added per batch, so its last bits may differ.
    got, want = _samples(batched), _samples(one_by_one)
    assert [sample for sample in got if sample[0] != "lag_one_sum"] == [s for s in want if s[0] != "lag_one_sum"]
    assert math.isclose(_sum(got), _sum(want), rel_tol=1e-12)
