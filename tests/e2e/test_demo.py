"""README command 1 (`parcelstream demo`), short and on free ports: the live stack answers from
outside while it runs, and the demo ends by itself with every stage having done its part and no
process left behind."""

from __future__ import annotations

import json

import httpx
import pytest

from deploy.demo import DEMO_OPERATIONS_KEY
from tests.e2e.conftest import DEMO_END_TIMEOUT
from tests.e2e.stack import REPO_ROOT, DemoRun, processes_with_marker, still_alive, wait_for

pytestmark = pytest.mark.e2e

SCAN_SOURCES: list[str] = json.loads((REPO_ROOT / "schemas" / "avro" / "parcelstream.ScanSource.avsc").read_text())[
    "symbols"
]
#: Sources every run publishes; rail and sea lanes carry few units, so a short run may have none.
BUSY_SOURCES = ("flight", "warehouse", "customs", "lastmile")


def _get(url: str, **headers: str) -> httpx.Response | None:
    try:
        return httpx.get(url, headers=headers, timeout=5)
    except httpx.HTTPError:
        return None


def test_the_live_stack_answers_from_outside(demo: DemoRun) -> None:
    tracking = wait_for(
        lambda: (r := _get(f"{demo.tracking_url}/healthz")) is not None and r.status_code == 200 and r,
        timeout=90,
        what=f"the tracking API /healthz on {demo.tracking_url}",
    )
    assert tracking.json()
    print(f"\ntracking API up at {demo.elapsed()}")
    gateway = wait_for(
        lambda: (r := _get(f"{demo.gateway_url}/healthz")) is not None and r.status_code == 200 and r,
        timeout=60,
        what=f"the gateway /healthz on {demo.gateway_url}",
    )
    assert gateway.json() == {"status": "ok"}

    summary_url = f"{demo.tracking_url}/v1/operations/summary"
    unauthorised = _get(summary_url)
    assert unauthorised is not None and unauthorised.status_code == 401

    def parcels_shown() -> dict[str, object] | None:
        response = _get(summary_url, **{"X-Operations-Key": DEMO_OPERATIONS_KEY})
        if response is None or response.status_code != 200:
            return None
        body = response.json()
        return body if body["total_parcels"] > 0 else None

    summary = wait_for(parcels_shown, timeout=90, what="parcels in the operations summary")
    assert summary["total_parcels"] == sum(summary["parcels_by_status"].values())
    print(f"operations summary at {demo.elapsed()}: {summary['parcels_by_status']}")

    # The movement board: the demo's flights, trains and containers through the operations API.
    def movements_shown() -> list[dict[str, object]] | None:
        response = _get(f"{demo.tracking_url}/v1/operations/movements", **{"X-Operations-Key": DEMO_OPERATIONS_KEY})
        return response.json()["movements"] if response is not None and response.status_code == 200 else None

    movements = wait_for(movements_shown, timeout=90, what="movements on the operations board")
    assert {movement["kind"] for movement in movements} <= {"flight", "train", "sea"}
    page = _get(f"{demo.tracking_url}/operations")
    assert page is not None and page.status_code == 200 and "Hub control room" in page.text
    print(f"movement board at {demo.elapsed()}: {[(m['movement_id'], m['state']) for m in movements[:3]]}")

    # While it runs, the broker and every stage are processes of this run (seen by their marker).
    assert demo.running(), demo.output()[-3000:]
    commands = [process.command for process in demo.record_processes()]
    assert any("tansu" in command for command in commands), commands
    stage_commands = [command for command in commands if " -m deploy" in command or "parcelstream " in command]
    assert len(stage_commands) >= 8, commands


@pytest.mark.after_demo
def test_demo_ends_with_every_stage_having_done_its_part(demo: DemoRun) -> None:
    result = demo.wait_finished(timeout=DEMO_END_TIMEOUT)
    figures = result.summary
    print(f"\ndemo summary after {demo.elapsed()}: {figures}")
    assert result.returncode == 0, result.output[-4000:]

    published = {
        name.removeprefix("scans published · "): value
        for name, value in figures.items()
        if name.startswith("scans published · ")
    }
    assert set(published) <= set(SCAN_SOURCES), published
    for source in BUSY_SOURCES:
        assert published.get(source, 0) > 0, f"no {source} scans published: {figures}"
    for source, count in published.items():
        assert count > 0, f"{source} printed with no scans: {figures}"

    assert figures["scans ingested by workers"] > 0, figures
    assert figures["status updates"] > 0, figures
    assert figures["notifications sent"] > 0, figures
    assert figures["webhooks received (verified)"] > 0, figures
    assert figures["webhook duplicates"] == 0, figures


@pytest.mark.after_demo
def test_no_process_of_the_demo_is_left_behind(demo: DemoRun) -> None:
    demo.wait_finished(timeout=DEMO_END_TIMEOUT)
    leftovers = processes_with_marker(demo.marker)
    assert not leftovers, [process.command for process in leftovers]
    # The processes seen while it ran (broker, stages) are all gone, not only unmarked.
    assert demo.seen_processes, "no process of the demo was seen while it ran"
    assert not [process.command for process in demo.seen_processes if still_alive(process)]
