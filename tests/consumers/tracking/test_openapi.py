"""docs/openapi-tracking.json is the tracking service's OpenAPI document; this test regenerates it
and fails when the checked-in copy has drifted (commit the regenerated file)."""

from __future__ import annotations

import json
from pathlib import Path

from consumers.settings import ConsumerSettings
from consumers.tracking.app import create_app

CHECKED_IN = Path(__file__).resolve().parents[3] / "docs" / "openapi-tracking.json"


def test_checked_in_openapi_matches_the_app() -> None:
    document = create_app(ConsumerSettings()).openapi()
    assert "/v1/parcels/{tracking_number}" in document["paths"]
    assert "/v1/operations/summary" in document["paths"]
    generated = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    current = CHECKED_IN.read_text() if CHECKED_IN.exists() else ""
    if current != generated:
        CHECKED_IN.write_text(generated)
    assert current == generated, f"{CHECKED_IN} was out of date and has been regenerated: review and commit it"
