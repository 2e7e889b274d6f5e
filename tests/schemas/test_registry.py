"""The registry pins every published schema: ids are unique, fingerprints never change."""

from __future__ import annotations

import json

from schemas.codec import REGISTRY_FILE, default_codec, schema_fingerprint
from schemas.topics import ALL_TOPICS


def test_published_schemas_are_immutable() -> None:
    for schema in default_codec().schemas:
        assert schema_fingerprint(schema.parsed) == schema.fingerprint, (
            f"{schema.file} changed after publication; add a new version instead"
        )


def test_schema_ids_are_unique_and_every_topic_value_is_registered() -> None:
    entries = json.loads(REGISTRY_FILE.read_text())["schemas"]
    ids = [entry["id"] for entry in entries]
    assert len(ids) == len(set(ids))
    codec = default_codec()
    for topic in ALL_TOPICS:
        assert codec.latest(topic.value).record_name == topic.value


def test_compacted_topics_keep_history_and_others_expire() -> None:
    for topic in ALL_TOPICS:
        config = topic.config()
        assert config["cleanup.policy"] in {"compact", "delete"}
        if config["cleanup.policy"] == "compact":
            assert config["retention.ms"] == "-1"
        else:
            assert int(config["retention.ms"]) > 0
