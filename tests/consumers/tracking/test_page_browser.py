"""The tracking page in a real headless Chromium at 360 px and 1280 px: each step's message, the
milestone bar and the delivery line of a delivered, an in-transit, a held-in-customs and a returning
parcel; axe-core finds no serious or critical violation; the page reads without JavaScript, its
language is switchable and remembered; a live update replaces a step without a reload (the whole
path: Kafka → projector → Redis pub/sub → SSE → page); a moved delivery window says when and why;
data is shown as text, never as markup.

axe-core comes from the ``axe-playwright-python`` package (a test dependency) and is injected by the
test only (an init script, so the page's own Content-Security-Policy stays as served)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import axe_playwright_python
import pytest
import redis
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from consumers.projector import Projector
from consumers.read_model import Keys
from consumers.settings import ConsumerSettings
from consumers.tracking.tokens import mint_token
from tests.consumers import journeys
from tests.consumers.helpers import TRACKING_SECRET, StateProducer, seed
from tests.stages import wait_for

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
TIMEOUT_MS = 30_000
AXE_SCRIPT = Path(axe_playwright_python.__file__).parent / "axe.min.js"
WIDTHS = {360: 780, 1280: 900}  # width: height
TN = "LX123456785CN"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def new_page(browser: Browser) -> Iterator[Callable[..., Page]]:
    """``new_page(width=360, javascript=True, locale=None, axe=False)``: a page in its own context."""
    contexts: list[BrowserContext] = []

    def make(width: int = 360, javascript: bool = True, locale: str | None = None, axe: bool = False) -> Page:
        options: dict[str, Any] = {"viewport": {"width": width, "height": WIDTHS.get(width, 800)}}
        if locale:
            options["locale"] = locale
        context = browser.new_context(java_script_enabled=javascript, **options)
        contexts.append(context)
        if axe:
            context.add_init_script(path=str(AXE_SCRIPT))
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        return page

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page_settings(redis_url: str, redis_prefix: str) -> ConsumerSettings:
    return ConsumerSettings(redis_url=redis_url, redis_prefix=redis_prefix, tracking_secret=TRACKING_SECRET)


def page_url(base_url: str, tracking_number: str, lang: str | None = "en") -> str:
    token = mint_token(TRACKING_SECRET, tracking_number)
    return f"{base_url}/track/{tracking_number}?token={token}" + (f"&lang={lang}" if lang else "")


def texts(page: Page, selector: str) -> list[str]:
    return [text.strip() for text in page.locator(selector).all_inner_texts()]


def serious_axe_violations(page: Page) -> list[dict[str, Any]]:
    violations: list[dict[str, Any]] = page.evaluate(
        """async () => {
            const result = await axe.run(document, { resultTypes: ["violations"] });
            return result.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target) }));
        }"""
    )
    return [v for v in violations if v["impact"] in {"serious", "critical"}]


#: kind: (parcel, status, delivery line start, current milestone, flag title or None, newest step's message)
PARCELS: dict[str, tuple[Callable[[str], dict[str, Any]], str, str, str, str | None, str]] = {
    "delivered": (
        journeys.delivered,
        "Delivered",
        "Delivered on Sun, Jan 4, 2026 23:30 (UTC+1)",
        "Delivered",
        None,
        "Delivered",
    ),
    "in_transit": (
        journeys.in_transit,
        "In transit",
        "Expected Wed, Jan 7\u2009–\u2009Fri, Jan 9",
        "Left China",
        None,
        "Departed Hangzhou Xiaoshan International Airport (HGH), China",
    ),
    "held_in_customs": (
        journeys.held_in_customs,
        "Held at customs",
        "Running late: customs clearance is taking longer than usual",
        "Arrived in Belgium",
        "Held by customs",
        "Held by customs in Belgium: IOSS number missing or invalid",
    ),
    "returning": (
        journeys.returning,
        "Exception",
        "This parcel is not being delivered",
        "Out for delivery",
        "Going back to the sender",
        "On its way back to the sender",
    ),
}


@pytest.mark.parametrize("width", sorted(WIDTHS))
@pytest.mark.parametrize("kind", sorted(PARCELS))
def test_each_parcel_reads_at_each_width_and_passes_axe(
    kind: str,
    width: int,
    page_settings: ConsumerSettings,
    tracking_server: Callable[[ConsumerSettings], str],
    new_page: Callable[..., Page],
    redis_client: redis.Redis,
) -> None:
    build, status, delivery, current, flag, newest = PARCELS[kind]
    seed(redis_client, page_settings.redis_prefix, build(TN))
    page = new_page(width=width, axe=True)
    page.goto(page_url(tracking_server(page_settings), TN))

    assert page.inner_text("#status") == status
    assert delivery in page.inner_text("#delivery")
    (shown,) = texts(page, "#milestones li[aria-current=step]")
    assert shown.startswith(current) and shown.endswith("(current step)")
    assert page.locator("#milestones li").count() == 7
    if flag is None:
        assert page.locator("#flag").count() == 0
        assert page.locator("#milestones li.flagged").count() == 0
    else:
        assert page.inner_text("#flag strong") == flag
        assert "What you can do:" in page.inner_text("#flag")
        assert page.locator("#milestones li.flagged[aria-current=step]").count() == 1
    messages = texts(page, "#history .message")
    assert messages[0] == newest
    assert len(messages) == len(build(TN)["history"])
    assert all(message not in {"In transit", "InTransit"} for message in messages)
    offset = {60: ("+01:00", "(UTC+1)"), 480: ("+08:00", "(UTC+8)")}[build(TN)["history"][-1]["utc_offset_minutes"]]
    assert (page.get_attribute("#history li:first-child time", "datetime") or "").endswith(offset[0])
    assert page.inner_text("#history li:first-child time").endswith(offset[1])

    # Mobile first: nothing wider than the screen; the bar is a column on phones and a row on desktops.
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    tops = page.evaluate("[...document.querySelectorAll('#milestones li')].map((li) => li.offsetTop)")
    assert (len(set(tops)) == 1) is (width >= 1280)

    assert serious_axe_violations(page) == []


@pytest.mark.parametrize("width", sorted(WIDTHS))
def test_the_not_found_and_malformed_pages_pass_axe(
    width: int,
    page_settings: ConsumerSettings,
    tracking_server: Callable[[ConsumerSettings], str],
    new_page: Callable[..., Page],
) -> None:
    base_url = tracking_server(page_settings)
    page = new_page(width=width, axe=True)
    for url, message in [
        (page_url(base_url, TN, "nl"), "We konden dit pakket niet vinden."),
        (f"{base_url}/track/not-a-parcel!?lang=zh", "运单号格式无效。"),
    ]:
        page.goto(url)
        assert page.inner_text("#message").startswith(message)
        assert page.locator("#parcel-view").count() == 0
        assert serious_axe_violations(page) == []


def test_the_axe_check_finds_what_it_must(
    page_settings: ConsumerSettings, tracking_server: Callable[[ConsumerSettings], str], new_page: Callable[..., Page]
) -> None:
    """The accessibility check can fail: a page with a nameless image link and no contrast is caught."""
    page = new_page(axe=True)
    page.goto(tracking_server(page_settings) + "/healthz")
    page.set_content('<html><body><a href="/x"><img src="/y"></a><p style="color:#eee;background:#fff">low</p></body>')
    assert {v["id"] for v in serious_axe_violations(page)} >= {"link-name", "color-contrast"}


def test_without_javascript_the_page_reads_and_the_language_switches_and_is_remembered(
    page_settings: ConsumerSettings,
    tracking_server: Callable[[ConsumerSettings], str],
    new_page: Callable[..., Page],
    redis_client: redis.Redis,
) -> None:
    seed(redis_client, page_settings.redis_prefix, journeys.held_in_customs(TN))
    base_url = tracking_server(page_settings)
    page = new_page(javascript=False, locale="de-DE")
    page.goto(page_url(base_url, TN, lang=None))  # Accept-Language: de-DE
    assert page.get_attribute("html", "lang") == "de"
    assert page.inner_text("#status") == "Beim Zoll angehalten"
    assert texts(page, "#history .message")[0] == "Vom Zoll angehalten (Belgien): IOSS number missing or invalid"

    page.get_by_role("link", name="Nederlands").click()
    page.wait_for_url("**lang=nl")
    assert page.get_attribute("html", "lang") == "nl"
    assert "Vertraagd: de douaneafhandeling duurt langer dan normaal" in page.inner_text("#delivery")
    assert page.get_attribute("a[hreflang=nl]", "aria-current") == "true"

    page.goto(page_url(base_url, TN, lang=None))  # no ?lang=: the choice is remembered
    assert page.get_attribute("html", "lang") == "nl"
    assert page.inner_text("#milestones li[aria-current=step]").startswith("Aangekomen in België")
    page.get_by_role("link", name="中文").click()
    page.wait_for_url("**lang=zh")
    assert texts(page, "#history .message")[0] == "被比利时海关扣留：IOSS number missing or invalid"


def test_a_live_update_replaces_the_steps_bar_and_delivery_line_without_a_reload(
    consumer_settings: ConsumerSettings,
    state_producer: StateProducer,
    run_projector: Callable[[ConsumerSettings], Projector],
    tracking_server: Callable[[ConsumerSettings], str],
    new_page: Callable[..., Page],
    redis_client: redis.Redis,
) -> None:
    base_url = tracking_server(consumer_settings)
    run_projector(consumer_settings)
    keys = Keys(consumer_settings.redis_prefix)
    state_producer.send(journeys.in_transit(TN))
    wait_for(lambda: redis_client.hget(keys.parcel(TN), "version") == "6", 60, "the parcel in Redis")

    page = new_page(width=360)
    page.goto(page_url(base_url, TN, "fr"))
    assert texts(page, "#history .message")[0] == "Parti de Hangzhou Xiaoshan International Airport (HGH), Chine"
    page.wait_for_function("() => document.getElementById('live').textContent === 'Mises à jour en direct'")
    page.evaluate("window.__sameDocument = true")

    state_producer.send(journeys.in_transit(TN, journeys.TO_CUSTOMS[:7]))  # arrived at Liège
    page.wait_for_function("() => document.querySelector('#history .message').textContent.startsWith('Arrivé à')")
    assert texts(page, "#history .message")[0] == "Arrivé à Liège Airport (LGG), Belgique"
    assert page.get_attribute("#parcel-view", "data-version") == "7"
    assert page.inner_text("#milestones li[aria-current=step]").startswith("Arrivé : Belgique")
    assert page.inner_text("#live").startswith("Mis à jour")

    state_producer.send(journeys.delivered(TN))
    page.wait_for_function("() => document.getElementById('status').textContent === 'Livré'")
    assert "Livré le dim. 4 janv. 2026 23:30 (UTC+1)" in page.inner_text("#delivery")
    assert texts(page, "#history .message")[0] == "Livré"
    assert page.evaluate("window.__sameDocument") is True  # no reload happened


def test_a_moved_window_says_when_and_why_live_and_on_load_and_not_once_delivered(
    consumer_settings: ConsumerSettings,
    state_producer: StateProducer,
    run_projector: Callable[[ConsumerSettings], Projector],
    tracking_server: Callable[[ConsumerSettings], str],
    new_page: Callable[..., Page],
    redis_client: redis.Redis,
) -> None:
    """Kafka → projector (which detects the move) → Redis → page: the line arrives with the live
    update, is there on a fresh load in another language, and goes once the parcel is delivered."""
    base_url = tracking_server(consumer_settings)
    run_projector(consumer_settings)
    keys = Keys(consumer_settings.redis_prefix)
    before, held = journeys.window_moved(TN)
    state_producer.send(before)
    wait_for(lambda: redis_client.hget(keys.parcel(TN), "version") == "9", 60, "the parcel in Redis")

    page = new_page(width=360, axe=True)
    page.goto(page_url(base_url, TN))
    assert page.locator("#estimate-moved").count() == 0
    page.wait_for_function("() => document.getElementById('live').textContent === 'Live updates'")

    state_producer.send(held)  # customs hold the parcel: the worker's window moves by 3 to 4 days
    page.wait_for_function("() => document.getElementById('estimate-moved') !== null")
    assert page.inner_text("#delivery").endswith("Expected Sat, Jan 10\u2009–\u2009Tue, Jan 13")
    assert page.inner_text("#estimate-moved") == (
        "Estimated delivery moved from Wed, Jan 7\u2009–\u2009Fri, Jan 9 to Sat, Jan 10\u2009–\u2009Tue, Jan 13"
        " on Jan 3: held by customs in Belgium"
    )
    assert serious_axe_violations(page) == []

    fresh = new_page(width=1280, javascript=False)
    fresh.goto(page_url(base_url, TN, "de"))
    assert fresh.inner_text("#estimate-moved") == (
        "Voraussichtliche Zustellung am 3. Jan. von Mi., 7.\u2009–\u2009Fr., 9. Jan. auf "
        "Sa., 10.\u2009–\u2009Di., 13. Jan. verschoben: Vom Zoll angehalten (Belgien)"
    )
    assert fresh.evaluate("document.documentElement.scrollWidth") <= 1280

    state_producer.send(journeys.delivered(TN))  # a newer version: delivered, the move is not shown
    page.wait_for_function("() => document.getElementById('status').textContent === 'Delivered'")
    assert page.locator("#estimate-moved").count() == 0


def test_markup_in_data_is_shown_as_text(
    consumer_settings: ConsumerSettings,
    state_producer: StateProducer,
    run_projector: Callable[[ConsumerSettings], Projector],
    tracking_server: Callable[[ConsumerSettings], str],
    new_page: Callable[..., Page],
    redis_client: redis.Redis,
) -> None:
    base_url = tracking_server(consumer_settings)
    run_projector(consumer_settings)
    keys = Keys(consumer_settings.redis_prefix)
    hostile = '<script>window.__pwned = 1</script><img src="x" onerror="window.__pwned = 2">'
    place = {"code": "LGG", "kind": "facility", "name": hostile}
    steps = [*journeys.TO_DEPARTURE[:-1], ("LINEHAUL_DEPARTED", 44, place, 60, "CK", hostile)]
    state_producer.send(journeys.in_transit("LX000000666CN", steps[:-1]))
    wait_for(lambda: redis_client.exists(keys.parcel("LX000000666CN")), 60, "the parcel in Redis")

    page = new_page()
    page.goto(page_url(base_url, "LX000000666CN"))
    page.wait_for_function("() => document.getElementById('live').textContent !== ''")
    state_producer.send(journeys.in_transit("LX000000666CN", steps))  # arrives live, through the fragment
    page.wait_for_function("() => document.getElementById('parcel-view').dataset.version === '6'")
    assert texts(page, "#history .message")[0] == f"Departed {hostile}: {hostile}"
    assert page.locator("#parcel-view script, #parcel-view img").count() == 0
    assert page.evaluate("window.__pwned") is None

    malformed = "<script>window.__pwned=3</script>"
    page.goto(f"{base_url}/track/{quote(malformed, safe='')}")
    assert page.text_content("#tracking-number") == malformed
    assert page.text_content("#message") == "This is not a valid tracking number."
    assert page.evaluate("window.__pwned") is None
