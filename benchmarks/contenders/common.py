"""What every contender process shares: its arguments and the result file it writes when done.

Stdlib only: the Quix Streams contender imports this module from its own virtualenv.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class ContenderResult:
    inputs: int
    """Input records consumed (scans and manifests)."""
    state_updates: int
    """Parcel-state updates: dict writes for the raw loops, ParcelState outputs for the frameworks."""
    elapsed_s: float
    """From the first consumed record to the last output (group-join time excluded)."""
    cpu_seconds: float
    """CPU time of the process over the same window."""
    peak_rss_bytes: int


def arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--input-prefix", required=True, help="reads <prefix>.scans and <prefix>.manifests")
    parser.add_argument("--output-prefix", required=True, help="writes <prefix>.parcel-state etc.")
    parser.add_argument("--inputs", type=int, required=True, help="input records to consume before stopping")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--result", type=Path, required=True, help="JSON result file written when done")
    return parser.parse_args()


class Window:
    """Wall and CPU clocks from the first consumed record (``start``) to the last output (``mark``)."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.cpu_started = 0.0
        self.last = 0.0
        self.cpu_last = 0.0

    def start(self) -> None:
        if self.started is None:
            self.started = time.perf_counter()
            self.cpu_started = time.process_time()

    def mark(self) -> None:
        self.last = time.perf_counter()
        self.cpu_last = time.process_time()

    def result(self, inputs: int, state_updates: int) -> ContenderResult:
        if self.started is None or self.last < self.started:
            self.start()
            self.mark()
        assert self.started is not None
        return ContenderResult(
            inputs=inputs,
            state_updates=state_updates,
            elapsed_s=self.last - self.started,
            cpu_seconds=self.cpu_last - self.cpu_started,
            peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        )


def write_result(path: Path, result: ContenderResult) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(asdict(result)))
    temporary.replace(path)  # the harness never reads a half-written file
