"""The tracking page in a real headless Chromium: live updates without a reload, and data shown as
text, never as markup. The whole path runs: Kafka → projector → Redis pub/sub → SSE → page."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from urllib.parse import quote

import pytest
import redis
from playwright.sync_api import Browser, Page, sync_playwright

from consumers.projector import Projector
from consumers.read_model import Keys
from consumers.settings import ConsumerSettings
from consumers.tracking.tokens import mint_token
from tests.consumers.helpers import TRACKING_SECRET, StateProducer, parcel_state
from tests.stages import wait_for

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
TIMEOUT_MS = 30_000


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
    page.set_default_timeout(TIMEOUT_MS)
    try:
        yield page
    finally:
        context.close()


def page_url(base_url: str, tracking_number: str, lang: str = "en") -> str:
    token = mint_token(TRACKING_SECRET, tracking_number)
    return f"{base_url}/track/{tracking_number}?token={token}&lang={lang}"


def test_the_page_shows_a_new_status_without_a_reload(
    page: Page,
    consumer_settings: ConsumerSettings,
    state_producer: StateProducer,
    run_projector: Callable[[ConsumerSettings], Projector],
    tracking_server: Callable[[ConsumerSettings], str],
    redis_client: redis.Redis,
) -> None:
    base_url = tracking_server(consumer_settings)
    run_projector(consumer_settings)
    keys = Keys(consumer_settings.redis_prefix)
    state_producer.send(parcel_state("LX123456785CN", 3, "OutForDelivery"))

    wait_for(lambda: redis_client.hget(keys.parcel("LX123456785CN"), "version") == "3", 60, "the parcel in Redis")

    page.goto(page_url(base_url, "LX123456785CN", "fr"))
    page.wait_for_function("() => document.getElementById('status').textContent === 'En cours de livraison'")
    page.wait_for_function("() => document.getElementById('live').textContent === 'Mises à jour en direct'")
    page.evaluate("window.__sameDocument = true")
    assert page.locator("#history li").count() == 3

    state_producer.send(parcel_state("LX123456785CN", 4, "Delivered", on_time=False))

    page.wait_for_function("() => document.getElementById('status').textContent === 'Livré'")
    assert page.evaluate("window.__sameDocument") is True  # no reload happened
    assert page.get_attribute("#status", "data-status") == "Delivered"
    assert page.text_content("#on-time") == "En retard"
    assert page.locator("#history li").count() == 4
    assert page.text_content("#history li:first-child strong") == "Livré"


def test_markup_in_data_is_shown_as_text(
    page: Page,
    consumer_settings: ConsumerSettings,
    state_producer: StateProducer,
    run_projector: Callable[[ConsumerSettings], Projector],
    tracking_server: Callable[[ConsumerSettings], str],
    redis_client: redis.Redis,
) -> None:
    base_url = tracking_server(consumer_settings)
    run_projector(consumer_settings)
    keys = Keys(consumer_settings.redis_prefix)
    hostile = '<script>window.__pwned = 1</script><img src="x" onerror="window.__pwned = 2">'
    state_producer.send(
        parcel_state("LX000000666CN", 2, "InTransit", location={"code": "LGG", "kind": "facility", "name": hostile})
    )
    wait_for(lambda: redis_client.exists(keys.parcel("LX000000666CN")), 60, "the parcel in Redis")

    page.goto(page_url(base_url, "LX000000666CN"))
    page.wait_for_function("() => document.getElementById('message').textContent === ''")
    assert page.text_content("#location") == hostile
    assert page.locator("#location script, #location img, #history img").count() == 0
    assert page.evaluate("window.__pwned") is None

    malformed = "<script>window.__pwned=3</script>"
    page.goto(f"{base_url}/track/{quote(malformed, safe='')}")
    page.wait_for_function("() => document.getElementById('message').textContent !== ''")
    assert page.text_content("#tracking-number") == malformed
    assert page.text_content("#message") == "This is not a valid tracking number."
    assert page.evaluate("window.__pwned") is None
