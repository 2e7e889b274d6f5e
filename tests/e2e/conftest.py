"""One demo for the whole e2e folder: `parcelstream demo` runs in the background on free ports with
a unique Redis prefix while a real Prometheus scrapes it. Tests marked ``after_demo`` read the final
summary, so they run after every test that inspects the live stack."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import unique
from tests.e2e.stack import REPO_ROOT, DemoRun, Prometheus, demo_options, prometheus_config

E2E_DIR = Path(__file__).resolve().parent
#: Wall seconds of simulated traffic; the demo then drains (up to 30 s) and stops its stages.
DEMO_DURATION = 50.0
DEMO_RATE = 10.0
#: Start-up + duration + drain + shutdown, with room for a busy 2-core machine.
DEMO_END_TIMEOUT = 240.0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "after_demo: reads the demo's final summary, so runs after the live tests")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Keep the e2e tests where they are, but put the after_demo ones last among them.
    positions = [index for index, item in enumerate(items) if item.path.is_relative_to(E2E_DIR)]
    ours = sorted((items[index] for index in positions), key=lambda item: bool(item.get_closest_marker("after_demo")))
    for index, item in zip(positions, ours, strict=True):
        items[index] = item


@pytest.fixture(scope="package")
def demo(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    """The running demo; its Redis keys are deleted and every process it started is gone afterwards."""
    import redis

    options = demo_options(redis_url, unique("ps-e2e"), DEMO_DURATION, DEMO_RATE)
    run = DemoRun(options, tmp_path_factory.mktemp("demo") / "demo-output.txt")
    run.start()
    try:
        yield run
    finally:
        run.stop()
        client = redis.Redis.from_url(redis_url)
        try:
            keys = list(client.scan_iter(match=f"{options.redis_prefix}*", count=1000))
            for start in range(0, len(keys), 1000):
                client.delete(*keys[start : start + 1000])
        finally:
            client.close()


@pytest.fixture(scope="package")
def prometheus(demo: DemoRun, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """A real Prometheus scraping the demo's ports every second, with the alert rules loaded."""
    folder = tmp_path_factory.mktemp("prometheus")
    config_path = folder / "prometheus.yml"
    config = prometheus_config(demo.options, REPO_ROOT / "deploy" / "prometheus" / "alerts.yml")
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    server = Prometheus(config_path, folder / "data", folder / "prometheus.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()
