"""A parcel's page and API name the flight its bag travelled on: manifests, unit scans and the parcel's
state go through a real broker and the projector into Redis (the movement board), and the tracking
service, on a real uvicorn, reads the parcel's movement once the look-up is authorised."""

from __future__ import annotations

from collections.abc import Callable
from html import unescape
from types import SimpleNamespace

import httpx
import pytest
import redis

from consumers.movements import Keys as MovementKeys
from consumers.projector import Projector
from consumers.settings import ConsumerSettings
from consumers.tracking.tokens import mint_token
from schemas.topics import TopicNames
from tests.consumers import journeys
from tests.consumers.helpers import TRACKING_SECRET, StateProducer
from tests.consumers.test_movements import bag_manifest, board, unit_manifest, unit_scan
from tests.stages import publish_records, wait_for

pytestmark = pytest.mark.integration

FLOWN = "LX123456785CN"  # its bag travelled in a ULD on flight CK261
UNMANIFESTED = "LX123456799CN"  # in no manifest: its movement is unknown
DEPARTED = "Departed Hangzhou Xiaoshan International Airport (HGH), China"


def test_a_parcel_whose_bag_flew_names_the_flight_on_its_page_and_api(
    consumer_settings: ConsumerSettings,
    topics: TopicNames,
    bootstrap_servers: str,
    run_projector: Callable[[ConsumerSettings], Projector],
    tracking_server: Callable[[ConsumerSettings], str],
    redis_url: str,
) -> None:
    publish_records(
        bootstrap_servers,
        topics,
        [
            SimpleNamespace(kind="manifest", value=bag_manifest("BAG1", [FLOWN])),
            SimpleNamespace(kind="manifest", value=unit_manifest("AKE00001CK", ["BAG1"])),
            SimpleNamespace(kind="scan", value=unit_scan("AKE00001CK", "LINEHAUL_DEPARTED", 44, "HGH")),
            SimpleNamespace(kind="scan", value=unit_scan("AKE00001CK", "LINEHAUL_ARRIVED", 58, "LGG")),
        ],
    )
    run_projector(consumer_settings)
    prefix = consumer_settings.redis_prefix
    wait_for(lambda: [row["expected"] for row in board(redis_url, prefix).movements] == [1], 90, "the flight")
    StateProducer(bootstrap_servers, topics).send(journeys.delivered(FLOWN), journeys.delivered(UNMANIFESTED))
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        board_key = MovementKeys(prefix).board
        wait_for(lambda: client.hget(board_key(FLOWN), "mv"), 60, "the flown parcel counted in its flight")
        wait_for(lambda: client.exists(board_key(UNMANIFESTED)), 60, "the other parcel projected")
    finally:
        client.close()

    with httpx.Client(base_url=tracking_server(consumer_settings), timeout=10) as api:
        flown = api.get(f"/v1/parcels/{FLOWN}", params={"token": mint_token(TRACKING_SECRET, FLOWN)})
        assert flown.status_code == 200
        assert flown.json()["movement"] == {"kind": "flight", "reference": "CK261"}  # never the air waybill
        page = api.get(f"/track/{FLOWN}", params={"token": mint_token(TRACKING_SECRET, FLOWN), "lang": "en"})
        assert page.status_code == 200
        text = unescape(page.text)
        assert f"{DEPARTED} on flight CK261" in text
        assert "Arrived at Liège Airport (LGG), Belgium on flight CK261" in text
        assert "157-12345675" not in text
        french = api.get(f"/track/{FLOWN}/view", params={"token": mint_token(TRACKING_SECRET, FLOWN), "lang": "fr"})
        assert "sur le vol CK261" in unescape(french.text)

        token = {"token": mint_token(TRACKING_SECRET, UNMANIFESTED), "lang": "en"}
        other = api.get(f"/v1/parcels/{UNMANIFESTED}", params=token)
        assert other.json()["movement"] is None
        other_page = unescape(api.get(f"/track/{UNMANIFESTED}", params=token).text)
        assert DEPARTED in other_page and "CK261" not in other_page

        # Refused look-ups read nothing of the parcel, its movement included.
        refused = api.get(f"/v1/parcels/{FLOWN}", params={"postcode": "9999"})
        assert refused.status_code == 404 and "CK261" not in refused.text
