"""Cold starts: each contender's command line (benchmarks/cold_start.py), run in shuffled rounds of fresh processes."""

import math
import random
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.serving_build import EVENT, ROOT, Spec

TRACED_ENV = {"POWERTOOLS_TRACE_DISABLED": "false"}
NAIVE_EVERY = 3


def run_python(args: list[str], env: dict[str, str], cwd: Path) -> float:
    """Wall time of one fresh process, start to exit."""
    started = time.perf_counter()
    result = subprocess.run(args, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{args[:3]} failed: {result.stderr.decode()[-2000:]}")
    return elapsed


def cold_start_commands(
    function: Path, layer: Path, runtime: Path, state_path: Path, spec: Spec
) -> dict[str, tuple[list[str], dict[str, str]]]:
    """Each contender's command line (benchmarks/cold_start.py), and the variables it sets over the
    model's Lambda environment."""
    script = str(ROOT / "benchmarks" / "cold_start.py")
    paths = ["--function", str(function), "--layer", str(layer), "--runtime", str(runtime), "--event", str(EVENT)]
    naive = ["--state", str(state_path), "--hidden", ",".join(map(str, spec.hidden))]
    return {
        "ours": ([sys.executable, "-S", script, "ours", *paths], {}),
        "ours traced": ([sys.executable, "-S", script, "ours", *paths], TRACED_ENV),
        "bare": ([sys.executable, "-S", script, "bare", *paths], {}),
        "bare + powertools": ([sys.executable, "-S", script, "bare+powertools", *paths], {}),
        "naive": ([sys.executable, script, "naive", *paths, *naive], {}),
    }


def measure_cold_starts(
    runs: dict[tuple[str, str], tuple[list[str], dict[str, str], Path]], rounds: int
) -> dict[tuple[str, str], list[float]]:
    """Seconds per cold start of each (model, contender): its command, environment and folder, run in
    rounds of every contender in a shuffled order. The naive baseline runs every NAIVE_EVERY-th round
    only (it takes ~10x the others, far from its goal); its other rounds hold NaN."""
    times: dict[tuple[str, str], list[float]] = {key: [] for key in runs}
    order = list(runs)
    shuffler = random.Random(0)
    for index in range(rounds):
        shuffler.shuffle(order)  # no contender always runs right after a slow one, or first in a quiet moment
        for key in order:
            skipped = key[1] == "naive" and index % NAIVE_EVERY
            times[key].append(math.nan if skipped else run_python(*runs[key]))
    return times
