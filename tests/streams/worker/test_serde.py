"""The ParcelState encoder with cached history entries writes exactly what the codec writes."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.codec import default_codec
from streams.worker.serde import ParcelStateEncoder
from tests.streams.builders import Pipeline
from tests.streams.core.test_properties import Journey, journeys

CODEC = default_codec()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(journey=journeys(), seed=st.randoms(use_true_random=False), max_entries=st.sampled_from([3, 1000]))
def test_every_state_along_a_journey_encodes_as_the_codec_does(
    journey: Journey, seed: random.Random, max_entries: int
) -> None:
    encoder = ParcelStateEncoder(CODEC, max_entries=max_entries)  # 3: the cache empties along the way
    pipeline = Pipeline()
    messages = list(journey.messages)
    seed.shuffle(messages)  # late events land inside the cached histories
    for kind, value in messages:
        pipeline.feed(kind, value)
        for parcel in pipeline.parcels.values():
            record = parcel.to_record()
            assert encoder.encode(record) == CODEC.encode("ParcelState", record)
            assert CODEC.decode(encoder.encode(record)).value == record
