"""The tracking API on a real uvicorn server over a real Redis read model."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import pytest
import redis

from consumers.read_model import TRACKING_NUMBER_RULE
from consumers.settings import ConsumerSettings
from consumers.tracking.tokens import mint_token
from tests.consumers import journeys
from tests.consumers.helpers import OPERATIONS_KEY, TRACKING_SECRET, parcel_state, seed

pytestmark = pytest.mark.integration

TN = "LX123456785CN"


@pytest.fixture
def api_settings(redis_url: str, redis_prefix: str) -> ConsumerSettings:
    return ConsumerSettings(
        redis_url=redis_url, redis_prefix=redis_prefix, tracking_secret=TRACKING_SECRET, operations_key=OPERATIONS_KEY
    )


@pytest.fixture
def api(api_settings: ConsumerSettings, tracking_server: Callable[[ConsumerSettings], str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=tracking_server(api_settings), timeout=10) as client:
        yield client


def test_a_parcel_is_found_with_its_postcode_or_a_signed_token(
    api: httpx.Client, redis_client: redis.Redis, redis_prefix: str
) -> None:
    seed(redis_client, redis_prefix, parcel_state(TN, 3, "OutForDelivery", on_time=False))
    by_postcode = api.get(f"/v1/parcels/{TN.lower()}", params={"postcode": "1000bx"})
    assert by_postcode.status_code == 200
    body = by_postcode.json()
    assert body["tracking_number"] == TN
    assert body["status"] == "OutForDelivery"
    assert body["sub_status"] == "OutForDelivery_001"
    assert body["on_time"] is False
    assert body["last_location"]["code"] == "LGG"
    assert body["estimated_delivery"]["earliest_ms"] < body["estimated_delivery"]["latest_ms"]
    times = [entry["event_time_ms"] for entry in body["history"]]
    assert len(times) == 3
    assert times == sorted(times)
    assert "postcode_hash" not in body
    by_token = api.get(f"/v1/parcels/{TN}", params={"token": mint_token(TRACKING_SECRET, TN)})
    assert by_token.status_code == 200
    assert by_token.json() == body


def test_the_api_says_when_and_why_the_window_moved(
    api: httpx.Client, redis_client: redis.Redis, redis_prefix: str
) -> None:
    before, held = journeys.window_moved(TN)
    seed(redis_client, redis_prefix, before)
    token = {"token": mint_token(TRACKING_SECRET, TN)}
    assert api.get(f"/v1/parcels/{TN}", params=token).json()["estimate_moved"] is None
    seed(redis_client, redis_prefix, held)
    moved = api.get(f"/v1/parcels/{TN}", params=token).json()["estimate_moved"]
    assert moved["from"] == {
        "earliest_ms": before["estimated_delivery"]["earliest_ms"],
        "latest_ms": before["estimated_delivery"]["latest_ms"],
    }
    assert moved["to"]["earliest_ms"] == journeys.HELD_WINDOW["earliest_ms"]
    assert (moved["direction"], moved["sub_status"], moved["code"]) == ("later", "held_import", "IMPORT_CUSTOMS_HELD")
    assert moved["at_ms"] == held["last_event_time_ms"]


def test_unknown_parcel_wrong_postcode_wrong_token_and_no_credentials_look_the_same(
    api: httpx.Client, redis_client: redis.Redis, redis_prefix: str
) -> None:
    seed(redis_client, redis_prefix, parcel_state(TN, 2))
    answers = [
        api.get("/v1/parcels/LX999999999CN", params={"postcode": "1000BX"}),
        api.get("/v1/parcels/LX999999999CN", params={"token": mint_token(TRACKING_SECRET, "LX999999999CN")}),
        api.get(f"/v1/parcels/{TN}", params={"postcode": "2000AB"}),
        api.get(f"/v1/parcels/{TN}", params={"token": mint_token("another-secret", TN)}),
        api.get(f"/v1/parcels/{TN}"),
    ]
    assert [answer.status_code for answer in answers] == [404] * 5
    assert len({answer.content for answer in answers}) == 1
    assert answers[0].json() == {"detail": "parcel not found"}
    assert len({answer.headers["content-length"] for answer in answers}) == 1


@pytest.mark.parametrize("bad", ["SHORT", "LX12345678-CN", "%3Cscript%3E", "A" * 41])
def test_a_malformed_tracking_number_is_a_422(api: httpx.Client, bad: str) -> None:
    answer = api.get(f"/v1/parcels/{bad}", params={"postcode": "1000BX"})
    assert answer.status_code == 422
    assert TRACKING_NUMBER_RULE in answer.json()["detail"]


def test_operations_summary_needs_the_key_and_counts_parcels(
    api: httpx.Client, redis_client: redis.Redis, redis_prefix: str
) -> None:
    seed(
        redis_client,
        redis_prefix,
        parcel_state("LX000000001CN", 2, "InTransit", open_sla=["silence:breach", "promise:at_risk"]),
        parcel_state("LX000000002CN", 2, "InTransit"),
        parcel_state("LX000000003CN", 5, "Delivered", open_sla=["promise:breach"]),
        parcel_state("LX000000002CN", 3, "CustomsHold"),  # moves out of InTransit
    )
    assert api.get("/v1/operations/summary").status_code == 401
    assert api.get("/v1/operations/summary", headers={"X-Operations-Key": "guess"}).status_code == 401
    summary = api.get("/v1/operations/summary", headers={"X-Operations-Key": OPERATIONS_KEY})
    assert summary.status_code == 200
    body = summary.json()
    assert body["parcels_by_status"]["InTransit"] == 1
    assert body["parcels_by_status"]["CustomsHold"] == 1
    assert body["parcels_by_status"]["Delivered"] == 1
    assert body["total_parcels"] == 3
    assert body["open_sla"]["promise:breach"] == 1
    assert body["open_sla"]["promise:at_risk"] == 1
    assert body["open_breaches"] == 2


def test_operations_api_is_off_without_a_configured_key(
    redis_url: str, redis_prefix: str, tracking_server: Callable[[ConsumerSettings], str]
) -> None:
    base_url = tracking_server(ConsumerSettings(redis_url=redis_url, redis_prefix=redis_prefix))
    answer = httpx.get(f"{base_url}/v1/operations/summary", headers={"X-Operations-Key": ""}, timeout=10)
    assert answer.status_code == 503
    assert "PARCELSTREAM_OPERATIONS_KEY" in answer.json()["detail"]


def test_live_events_start_with_the_current_state_and_follow_changes(
    api: httpx.Client, redis_client: redis.Redis, redis_prefix: str
) -> None:
    seed(redis_client, redis_prefix, parcel_state(TN, 2, "InTransit"))
    token = mint_token(TRACKING_SECRET, TN)
    assert api.get(f"/v1/parcels/{TN}/events", params={"token": "wrong"}).status_code == 404
    with api.stream("GET", f"/v1/parcels/{TN}/events", params={"token": token}) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        events: list[dict[str, object]] = []
        for line in lines:
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))
                if len(events) == 1:
                    seed(redis_client, redis_prefix, parcel_state(TN, 3, "OutForDelivery"))
                else:
                    break
    assert [(event["version"], event["status"]) for event in events] == [(2, "InTransit"), (3, "OutForDelivery")]


def test_health_metrics_and_page_languages(api: httpx.Client) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    assert api.get("/metrics").status_code == 404  # on the operations port (--metrics-port), not the public one
    french = api.get(f"/track/{TN}", params={"lang": "fr"})
    assert french.status_code == 404  # no credentials: the same "not found" page as an unknown parcel
    assert '<html lang="fr">' in french.text
    assert "Suivre votre colis" in french.text
    assert "Colis introuvable" in french.text
    assert "script-src 'self'" in french.headers["content-security-policy"]
    assert api.cookies["parcelstream_lang"] == "fr"
    api.cookies.clear()
    dutch = api.get(f"/track/{TN}", headers={"Accept-Language": "es-ES, nl-BE;q=0.8, en;q=0.5"})
    assert '<html lang="nl">' in dutch.text
    malformed = api.get("/track/%3Cscript%3Ealert(1)")
    assert malformed.status_code == 422
    assert "<script>alert" not in malformed.text
    assert "&lt;script&gt;alert(1)" in malformed.text
    assert "\\u003cscript\\u003ealert(1)" in malformed.text


def test_the_page_renders_the_parcel_without_javascript_and_remembers_the_language(
    api: httpx.Client, redis_client: redis.Redis, redis_prefix: str
) -> None:
    seed(redis_client, redis_prefix, journeys.held_in_customs(TN))
    token = mint_token(TRACKING_SECRET, TN)
    page = api.get(f"/track/{TN}", params={"token": token, "lang": "de"})
    assert page.status_code == 200
    assert '<html lang="de">' in page.text
    assert "Vom Zoll angehalten (Belgien): IOSS number missing or invalid" in page.text
    assert "Verspätet: die Verzollung dauert länger als üblich" in page.text
    assert 'aria-current="step">Angekommen: Belgien' in page.text
    assert page.cookies["parcelstream_lang"] == "de"
    # The choice is remembered over Accept-Language; the language links keep the token.
    again = api.get(f"/track/{TN}", params={"token": token}, headers={"Accept-Language": "fr"})
    assert '<html lang="de">' in again.text
    assert f'href="?token={token}&amp;lang=nl"' in again.text
    by_postcode = api.get(f"/track/{TN}", params={"postcode": "1000bx", "lang": "en"})
    assert by_postcode.status_code == 200
    assert "Held by customs in Belgium: IOSS number missing or invalid" in by_postcode.text

    view = api.get(f"/track/{TN}/view", params={"token": token, "lang": "zh"})
    assert view.status_code == 200
    assert view.text.startswith('<div id="parcel-view" data-version="10">')
    assert "被比利时海关扣留" in view.text
    denied = api.get(f"/track/{TN}/view", params={"token": mint_token("another-secret", TN)})
    unknown = api.get("/track/LX999999999CN/view", params={"token": mint_token(TRACKING_SECRET, "LX999999999CN")})
    assert denied.status_code == unknown.status_code == 404
    assert denied.text == unknown.text == ""
    assert api.get("/track/bad!/view").status_code == 422


def test_the_not_found_page_does_not_tell_an_unknown_parcel_from_wrong_credentials(
    api: httpx.Client, redis_client: redis.Redis, redis_prefix: str
) -> None:
    wrong_token = mint_token("another-secret", TN)
    requests = [{"token": wrong_token}, {"postcode": "2000AB"}, {}]
    before = [api.get(f"/track/{TN}", params={**params, "lang": "en"}) for params in requests]
    seed(redis_client, redis_prefix, journeys.delivered(TN))
    after = [api.get(f"/track/{TN}", params={**params, "lang": "en"}) for params in requests]
    assert [page.status_code for page in before + after] == [404] * 6
    assert [page.text for page in before] == [page.text for page in after]
    assert all("Delivered" not in page.text for page in after)
