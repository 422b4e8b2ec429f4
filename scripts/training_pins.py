"""Print training/requirements.txt: every package the training job imports, at the version the tests run.

    .venv/bin/python scripts/training_pins.py > training/requirements.txt   # after changing a dev pin

The set is `serverless-ml[training]` and all it needs, read from the package metadata of the environment
this runs in (`make test`'s .venv, installed from pyproject.toml's exact dev pins). training/Dockerfile
installs this file, and tests/unit/test_dockerfile.py fails when it and the test environment differ.
Local version labels are dropped: torch 2.13.0+cpu here is torch 2.13.0 there, whose Linux x86_64 wheel on
PyPI is the CUDA build (it brings the CUDA libraries and Triton, pinned by torch itself).
"""

import sys
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

PROJECT = "serverless-ml"
EXTRA = "training"
HEADER = """\
# The training job's dependencies (training/Dockerfile installs them), at the versions `make test` runs.
# Generated: .venv/bin/python scripts/training_pins.py > training/requirements.txt
# (CPython {python} on {platform}; tests/unit/test_dockerfile.py fails when this file drifts.)
"""


def pins(project: str = PROJECT, extra: str = EXTRA) -> dict[NormalizedName, str]:
    """Package -> installed version (public part) of everything `project[extra]` needs, directly or not."""
    found: dict[NormalizedName, str] = {}
    pending: list[tuple[str, frozenset[str]]] = [(project, frozenset({extra}))]
    visited: set[tuple[NormalizedName, frozenset[str]]] = set()
    while pending:
        name, extras = pending.pop()
        key = (canonicalize_name(name), extras)
        if key in visited:
            continue
        visited.add(key)
        distribution = metadata.distribution(name)
        if key[0] != canonicalize_name(project):
            found[key[0]] = Version(distribution.version).public
        for text in distribution.requires or []:
            requirement = Requirement(text)
            environments = [{"extra": item} for item in sorted(extras)] or [{"extra": ""}]
            if requirement.marker is None or any(requirement.marker.evaluate(env) for env in environments):
                pending.append((requirement.name, frozenset(requirement.extras)))
    return found


def requirements_text() -> str:
    python = ".".join(map(str, sys.version_info[:2]))
    lines = [f"{name}=={version}" for name, version in sorted(pins().items())]
    return HEADER.format(python=python, platform=sys.platform) + "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(requirements_text())
