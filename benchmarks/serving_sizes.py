"""Package sizes: the function and layer as Lambda stores them, and PyTorch's dependencies for comparison."""

import importlib.metadata
import shutil
from pathlib import Path

from packaging.requirements import Requirement


def distribution_closure(name: str) -> set[str]:
    """The installed distributions `name` needs at run time (extras left out)."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop().lower().replace("_", "-")
        if current in seen:
            continue
        try:
            requires = importlib.metadata.distribution(current).requires or []
        except importlib.metadata.PackageNotFoundError:
            continue
        seen.add(current)
        parsed = [Requirement(requirement) for requirement in requires]
        todo += [r.name for r in parsed if r.marker is None or r.marker.evaluate({"extra": ""})]
    return seen


def lambda_runtime_packages(folder: Path) -> Path:
    """boto3 and its dependencies, which Lambda's python3.13 runtime can import (powertools imports botocore)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name in distribution_closure("boto3"):
        for file in importlib.metadata.distribution(name).files or []:
            top = file.parts[0]
            if top.endswith((".dist-info", ".data")) or top in ("..", "__pycache__") or (folder / top).exists():
                continue
            site = Path(str(file.locate())).parents[len(file.parts) - 1]
            (folder / top).symlink_to(site / top)
    return folder


def distribution_size(names: set[str]) -> int:
    total = 0
    for name in names:
        for file in importlib.metadata.distribution(name).files or []:
            path = Path(str(file.locate()))
            if path.is_file() and "__pycache__" not in path.parts:
                total += path.stat().st_size
    return total
