"""The operations API of the movement board and backlog, on a real server over real Redis: behind
the operations key, paged and filtered, and the page in a real headless Chromium that updates live."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
import redis
from playwright.sync_api import Browser, Page, expect, sync_playwright

from consumers.movements import MovementWriter, unit_scan_of
from consumers.projector import queue_plan
from consumers.read_model import Keys, plan_write, project
from consumers.settings import ConsumerSettings
from tests.consumers.helpers import BASE_TIME_MS, OPERATIONS_KEY, parcel_state
from tests.consumers.test_movements import HOUR, PARCELS, bag_manifest, fields, unit_manifest, unit_scan

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
HEADERS = {"X-Operations-Key": OPERATIONS_KEY}


@pytest.fixture
def writer(consumer_settings: ConsumerSettings) -> Iterator[MovementWriter]:
    client = redis.Redis.from_url(consumer_settings.redis_url)
    yield MovementWriter(client, consumer_settings.redis_prefix)
    client.close()


def seed_flight(writer: MovementWriter) -> None:
    writer.manifest(bag_manifest("BAG1", PARCELS[:3]))
    writer.manifest(unit_manifest("AKE00001CK", ["BAG1"]))
    for code, hours, place in (("LINEHAUL_DEPARTED", 5, "HGH"), ("LINEHAUL_ARRIVED", 17, "LGG")):
        found = unit_scan_of(unit_scan("AKE00001CK", code, hours, place))
        assert found is not None
        writer.unit_scan(found)
    for tn in PARCELS[:3]:
        writer.parcel(tn, 1, fields("InTransit", "arrived_at_destination", "import_customs"))


def test_the_api_needs_the_operations_key_and_pages_and_filters(
    consumer_settings: ConsumerSettings, tracking_server: Callable[[ConsumerSettings], str], writer: MovementWriter
) -> None:
    seed_flight(writer)
    base = tracking_server(consumer_settings)
    assert httpx.get(f"{base}/v1/operations/movements").status_code == 401
    assert httpx.get(f"{base}/v1/operations/backlog", headers={"X-Operations-Key": "wrong"}).status_code == 401
    assert httpx.get(f"{base}/v1/operations/movements?state=lost", headers=HEADERS).status_code == 422
    assert httpx.get(f"{base}/v1/operations/movements?limit=500", headers=HEADERS).status_code == 422
    board = httpx.get(f"{base}/v1/operations/movements?lane=HGH-LGG&state=arrived", headers=HEADERS).json()
    (row,) = board["movements"]
    assert (row["movement_id"], row["expected"], row["arrived"], row["in_import_customs"]) == (
        "CK261/157-12345675",
        3,
        3,
        3,
    )
    assert board["next_offset"] is None
    assert httpx.get(f"{base}/v1/operations/movements?lane=CKG-LGG", headers=HEADERS).json()["movements"] == []


def test_the_backlog_api_counts_parcels_per_stage(
    consumer_settings: ConsumerSettings, tracking_server: Callable[[ConsumerSettings], str], redis_client: redis.Redis
) -> None:
    keys = Keys(consumer_settings.redis_prefix)
    with redis_client.pipeline(transaction=True) as pipe:
        for n, stage in enumerate(("hub", "hub", "import_customs")):
            state = parcel_state(PARCELS[n], 2, stage=stage, stage_entered_ms=BASE_TIME_MS + n * HOUR)
            plan = plan_write(keys, project(state), None)
            assert plan is not None
            queue_plan(pipe, plan)
        pipe.execute()
    base = tracking_server(consumer_settings)
    stages = {s["stage"]: s for s in httpx.get(f"{base}/v1/operations/backlog", headers=HEADERS).json()["stages"]}
    assert (stages["hub"]["parcels"], stages["import_customs"]["parcels"], stages["linehaul"]["parcels"]) == (2, 1, 0)
    assert stages["hub"]["oldest_entered_ms"] == BASE_TIME_MS


def test_a_disabled_operations_api_says_so(
    consumer_settings: ConsumerSettings, tracking_server: Callable[[ConsumerSettings], str]
) -> None:
    base = tracking_server(consumer_settings.model_copy(update={"operations_key": ""}))
    assert httpx.get(f"{base}/v1/operations/movements", headers=HEADERS).status_code == 503


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"]
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        yield page
    finally:
        context.close()


def test_the_operations_page_shows_the_board_and_updates_without_a_reload(
    page: Page,
    consumer_settings: ConsumerSettings,
    tracking_server: Callable[[ConsumerSettings], str],
    writer: MovementWriter,
) -> None:
    seed_flight(writer)
    base = tracking_server(consumer_settings)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{base}/operations#key={OPERATIONS_KEY}")
    assert "#key" not in page.url  # the key leaves the address bar (and was never sent)
    row = page.locator('tr[data-movement="flight:CK261/157-12345675"]')
    expect(row).to_contain_text("HGH-LGG")
    expect(row.locator('td[data-count="expected"]')).to_have_text("3")
    expect(row.locator('td[data-count="held"]')).to_have_text("0")

    writer.parcel(PARCELS[0], 2, fields("CustomsHold", "held_import", "import_customs"))
    expect(row.locator('td[data-count="held"]')).to_have_text("1")  # a refresh, not a reload
    expect(row.locator('td[data-count="in_import_customs"]')).to_have_text("2")

    page.select_option("#state", "planned")
    expect(page.locator("#movements tbody")).to_contain_text("no movements")
    page.select_option("#state", "arrived")
    expect(row).to_be_visible()
    assert errors == []


def test_the_page_asks_for_the_key_and_shows_carrier_text_as_text(
    page: Page,
    consumer_settings: ConsumerSettings,
    tracking_server: Callable[[ConsumerSettings], str],
    writer: MovementWriter,
) -> None:
    manifest = unit_manifest("AKE00002CK", [])
    manifest["carrier"] = "<img src=x onerror=alert(1)>"
    writer.manifest(manifest)
    base = tracking_server(consumer_settings)
    page.goto(f"{base}/operations")
    expect(page.locator("#status")).to_have_text("missing or wrong operations key")
    page.fill("#key", OPERATIONS_KEY)
    page.click("#key-form button")
    row = page.locator("#movements tbody tr").first
    expect(row).to_contain_text("<img src=x onerror=alert(1)>")
    assert page.locator("#movements img").count() == 0
