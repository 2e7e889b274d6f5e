"""The Quix Streams contender's virtualenv holds only ``QUIX_REQUIREMENTS`` (and what they bring):
what the contender imports from the repository must need nothing else, at the versions the worker runs."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement

from benchmarks.run import QUIX_REQUIREMENTS

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTENDER = REPO_ROOT / "benchmarks" / "contenders" / "quix_streams.py"
REPOSITORY_PACKAGES = ("benchmarks", "schemas", "streams")
#: What quixstreams 3.28.1 itself requires (its METADATA) that the repository's modules import too.
FROM_QUIXSTREAMS = ("pydantic", "pydantic-settings")
#: Imported when installed, not required: aiokafka.codec's compression.
OPTIONAL = {"cramjam"}


def normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned() -> dict[str, str]:
    """Distribution → version of every requirement but Quix Streams itself."""
    pins = dict(requirement.split("==") for requirement in QUIX_REQUIREMENTS)
    return {normalised(name): version for name, version in pins.items() if normalised(name) != "quixstreams"}


def with_dependencies(roots: list[str]) -> set[str]:
    """``roots`` and everything they require (no extras), as installed in this virtualenv."""
    found: set[str] = set()
    todo = [normalised(root) for root in roots]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.add(name)
        for line in importlib.metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(normalised(requirement.name))
    return found


def repository_imports() -> list[str]:
    """The repository modules the contender imports."""
    tree = ast.parse(CONTENDER.read_text())
    return sorted(
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in REPOSITORY_PACKAGES
    )


def imported_distributions(modules: list[str]) -> set[str]:
    """Third-party distributions loaded by importing ``modules`` in a fresh interpreter."""

    def loaded(imports: list[str]) -> set[str]:
        script = (
            "import importlib, json, sys\n"
            f"for name in {imports!r}: importlib.import_module(name)\n"
            "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))"
        )
        done = subprocess.run(
            [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=60
        )
        return set(json.loads(done.stdout))

    # What the interpreter loads at start-up (site hooks of this virtualenv) is no import of the contender's.
    top_level = loaded(modules) - loaded([]) - set(sys.stdlib_module_names) - set(REPOSITORY_PACKAGES)
    distributions = importlib.metadata.packages_distributions()
    return {normalised(dist) for module in top_level for dist in distributions.get(module, [])}


def test_the_pins_are_the_versions_the_worker_runs_with() -> None:
    for name, version in pinned().items():
        assert importlib.metadata.version(name) == version, f"{name}: pin it in QUIX_REQUIREMENTS at the worker's"


def test_what_the_contender_imports_from_the_repository_needs_only_the_quix_requirements() -> None:
    modules = repository_imports()
    assert "streams.worker.processor" in modules
    provided = with_dependencies([*pinned(), *FROM_QUIXSTREAMS])
    missing = imported_distributions(modules) - provided - OPTIONAL
    assert not missing, f"add to QUIX_REQUIREMENTS (pinned): {sorted(missing)}"
