"""The table: each figure with its baseline, ratio, goal and PASS or MISS, or `info` for a figure without a goal."""

import math
import statistics
from pathlib import Path
from typing import Any

from benchmarks.serving_build import SPECS
from benchmarks.serving_sizes import distribution_closure, distribution_size
from scripts.package_size import folder_size, zipped_size


def measured(values: list[float]) -> list[float]:
    """The rounds a contender ran in."""
    return [value for value in values if not math.isnan(value)]


def median_ms(values: list[float]) -> float:
    return statistics.median(measured(values)) * 1e3


def row(
    label: str, ours: float, base: float | None, unit: str, goal: str, met: bool | None, ratio: float | None = None
) -> str:
    """A line of the table; met=None for a figure shown as information, without a goal."""
    ratio = ratio or (ours / base if base else None)
    baseline, shown = (f"{base:,.1f} {unit}", f"{ratio:.2f}x") if base and ratio else ("", "")
    result = "info" if met is None else "PASS" if met else "MISS"
    return f"| {label} | {ours:,.1f} {unit} | {baseline} | {shown} | {goal} | {result} |"


def paired_ratio(ours: list[float], baseline: list[float]) -> float:
    """The median of each round's ratio: both ran in the same round, so a busy minute hits both."""
    pairs = zip(ours, baseline, strict=True)
    return statistics.median(mine / theirs for mine, theirs in pairs if not math.isnan(mine + theirs))


def cold_rows(model: str, cold: dict[tuple[str, str], list[float]]) -> list[str]:
    """Cold start vs naive PyTorch, and vs bare onnxruntime with powertools' import set aside."""
    ours, bare, floor = cold[model, "ours"], cold[model, "bare"], cold[model, "bare + powertools"]
    ratio = paired_ratio(ours, cold[model, "naive"])
    lines = [
        row(f"{model} cold start vs naive PyTorch", median_ms(ours), median_ms(cold[model, "naive"]), "ms",
            "<= 0.15x", ratio <= 0.15, ratio)
    ]  # fmt: skip
    # Each round's cold start less what importing powertools cost bare in that round.
    own = [mine - (with_powertools - alone) for mine, with_powertools, alone in zip(ours, floor, bare, strict=True)]
    ratio = paired_ratio(own, bare)
    lines.append(row(f"{model} cold start less powertools' import vs bare onnxruntime",
                     median_ms(own), median_ms(bare), "ms", "<= 1.25x", ratio <= 1.25, ratio))  # fmt: skip
    for contender, label in (
        ("ours", "whole function"),
        ("ours traced", "tracing on"),
        ("bare + powertools", "bare + powertools' import"),
    ):
        ratio = paired_ratio(cold[model, contender], bare)
        lines.append(row(f"{model} cold start, {label}, vs bare onnxruntime",
                         median_ms(cold[model, contender]), median_ms(bare), "ms", "-", None, ratio))  # fmt: skip
    return lines


def warm_rows(model: str, batch: int, calls: dict[str, dict[str, float]]) -> list[str]:
    """The function's own work vs session.run, then where the whole function's time goes."""
    lines = []
    for stat in ("p50", "p99"):
        own, run, io = (calls[name][stat] for name in ("own", "run", "io"))
        if batch == 1:
            goal, met = "<= 2.0x", own <= 2.0 * run
        else:
            goal, met = f"excess {own - run:,.0f} <= 1.5x io of {io:,.0f} us", own - run <= 1.5 * io
        lines.append(row(f"{model} warm {stat} batch {batch}, own work, vs session.run", own, run, "us", goal, met))
    handler = calls["handler"]["p50"]
    for contender, limit in (("v2 json", 1.2), ("v2 binary", 1.0 if batch == 64 else 1.2)):
        ours, goal = calls[contender]["p50"], "< 1.0x" if limit == 1.0 else f"<= {limit}x"
        met = ours < handler if limit == 1.0 else ours <= limit * handler
        lines.append(row(f"{model} warm p50 batch {batch}, {contender} infer, vs POST /predict", ours, handler, "us",
                         goal, met))  # fmt: skip
    run, io, minimal = (calls[name]["p50"] for name in ("run", "io", "minimal"))
    info = (
        ("whole function", handler, f"excess {handler - run:,.0f} us"),
        ("powertools' share (Logger, Metrics)", calls["run + powertools"]["p50"] - run, "-"),
        ("minimal handler", minimal, f"excess {minimal - run:,.0f}, io {io:,.0f} us"),
    )
    for label, value, note in info:
        lines.append(row(f"{model} warm p50 batch {batch}, {label}, vs session.run", value, run, "us", note, None))
    return lines


def figures(
    cold: dict[tuple[str, str], list[float]],
    warm: dict[str, dict[int, Any]],
    traced: dict[int, Any],
    layers: dict[str, Path],
    function: Path,
) -> list[str]:
    """The table of figures, each with its goal and PASS or MISS, or `info`."""
    lines = ["| figure | ours | baseline | ratio | goal | result |", "|---|---|---|---|---|---|"]
    for spec in SPECS:
        lines += cold_rows(spec.name, cold)
        for batch in (1, 64):
            lines += warm_rows(spec.name, batch, warm[spec.name][batch])
    digits = SPECS[0].name
    for batch in (1, 64):
        lines.append(row(f"{digits} warm p50 batch {batch}, tracing on, vs session.run",
                         traced[batch]["handler"]["p50"], traced[batch]["run"]["p50"], "us", "-", None))  # fmt: skip
    ours_unzipped = folder_size(layers["arm64"]) + folder_size(function)
    ours_zipped = zipped_size(layers["arm64"]) + zipped_size(function)
    torch_unzipped = distribution_size(distribution_closure("torch"))
    lines.append(row("function + layer unzipped vs PyTorch deps", ours_unzipped / 1e6, torch_unzipped / 1e6, "MB",
                     "<= 0.20x", ours_unzipped <= 0.20 * torch_unzipped))  # fmt: skip
    lines.append(row("function + layer zipped", ours_zipped / 1e6, None, "MB", "<= 50 MB", ours_zipped <= 50e6))
    return lines
