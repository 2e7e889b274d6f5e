"""Regenerates the tracking page's screenshots in docs/images/ (phone 360 px, desktop 1280 px):

    .venv/bin/python docs/screenshots.py

It seeds a parcel held in customs (the sample parcels of the tests: tests/consumers/journeys.py)
under a fresh Redis prefix, serves the tracking app on a free port, shoots the page in the
Debian Chromium (/usr/bin/chromium) and removes its keys. Needs Redis (``make services``) and the
test dependencies (``make install``).
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: the project's packages and sample parcels

import redis  # noqa: E402
import uvicorn  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from consumers.settings import ConsumerSettings  # noqa: E402
from consumers.tracking.app import create_app  # noqa: E402
from consumers.tracking.tokens import mint_token  # noqa: E402
from deploy.embedded import free_port  # noqa: E402
from tests.consumers import journeys  # noqa: E402
from tests.consumers.helpers import seed  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/0"
SECRET = "screenshots-secret"
TRACKING_NUMBER = "LX123456785CN"
SHOTS = {"tracking-page-360.png": (360, 900), "tracking-page-1280.png": (1280, 820)}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


def main() -> None:
    prefix = f"parcelstream-screenshots-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(REDIS_URL)
    seed(client, prefix, journeys.held_in_customs(TRACKING_NUMBER))
    settings = ConsumerSettings(redis_url=REDIS_URL, redis_prefix=prefix, tracking_secret=SECRET)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}/track/{TRACKING_NUMBER}?token={mint_token(SECRET, TRACKING_NUMBER)}&lang=en"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            for name, (width, height) in SHOTS.items():
                # No JavaScript: the server-rendered page, without the live-status line that varies.
                context = browser.new_context(viewport={"width": width, "height": height}, java_script_enabled=False)
                page = context.new_page()
                page.goto(url)
                path = ROOT / "docs" / "images" / name
                page.screenshot(path=str(path))
                context.close()
                print(f"{path.relative_to(ROOT)}: {path.stat().st_size // 1024} KiB")
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        keys = list(client.scan_iter(f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()


if __name__ == "__main__":
    main()
