"""Cold start as built: `make rehearse`'s x86_64 `sam build` output in its Debian root, on the runtime's Python.

    .venv/bin/python -m benchmarks.as_built [--rounds 21]      (benchmarks/serving.py prints these rows too)

Four contenders of benchmarks/cold_start.py, each a fresh `python3.13 -I -S -B` in the x86_64 rehearsal root
(Lambda's environment from the template, /var/task and /opt as Lambda lays them out, no bytecode written), in
shuffled rounds: the built function answering events/predict.json; the same build with every __pycache__ removed
(what a build without a python3.13 ships: Lambda compiles it at every cold start); bare numpy + onnxruntime on the same
model; and bare plus `import aws_lambda_powertools`. Goal, as benchmarks/serving.py's: the function's cold
start less what powertools' import costs bare in the same round <= 1.25x bare. Needs root and build/rehearsal
(`make rehearse`); without them it prints one line saying so and no rows.
"""

import argparse
import os
import shutil
import sys
from pathlib import Path

from benchmarks.serving_build import EVENT
from benchmarks.serving_cold import measure_cold_starts
from benchmarks.serving_report import median_ms, paired_ratio, row
from scripts import rehearsal_root, rehearse

BUILT = rehearse.ROOT / "build" / "rehearsal" / "x86_64"
COLD_START = Path(__file__).resolve().parent / "cold_start.py"
STAGE = "/tmp/bench"  # in the root
Runs = dict[tuple[str, str], tuple[list[str], dict[str, str], Path]]


def arguments() -> dict[str, tuple[list[str], dict[str, str]]]:
    """Each contender's arguments to benchmarks/cold_start.py, and the variables it sets over Lambda's environment."""
    event = ["--event", f"{STAGE}/{EVENT.name}"]
    plain = {"LAMBDA_TASK_ROOT": "/var/task-no-bytecode"}
    return {
        "as built": (["ours", "--function", "/var/task", "--layer", "/opt/python", *event], {}),
        "no bytecode": (["ours", "--function", plain["LAMBDA_TASK_ROOT"], "--layer", "/opt-no-bytecode/python",
                         *event], plain),
        "bare": (["bare", "--function", "/var/task", "--layer", "/opt/python", *event], {}),
        "bare + powertools": (["bare+powertools", "--function", "/var/task", "--layer", "/opt/python", *event], {}),
    }  # fmt: skip


def runs() -> Runs:
    """The contenders for measure_cold_starts, or {} when this machine has no rehearsal to measure."""
    if os.geteuid() != 0 or not (BUILT / "PredictFunction").is_dir():
        print("as built: skipped, needs root and build/rehearsal/x86_64 (`make rehearse`)", file=sys.stderr)
        return {}
    root = rehearsal_root.ensure("x86_64")
    rehearse.install(root, BUILT)
    for folder in ("var/task", "opt"):
        plain = root / f"{folder}-no-bytecode"
        shutil.rmtree(plain, ignore_errors=True)
        shutil.copytree(root / folder, plain, ignore=shutil.ignore_patterns("__pycache__"))
    environment = rehearse.lambda_environment(BUILT)
    stage = root / STAGE.lstrip("/")  # the script and the event, where the root's Python can read them
    stage.mkdir(parents=True, exist_ok=True)
    for file in (COLD_START, EVENT):
        shutil.copyfile(file, stage / file.name)
    command = [*rehearsal_root.python_command(root, "x86_64"), "-I", "-S", "-B", f"{STAGE}/{COLD_START.name}"]
    return {
        ("as built", name): ([*command, *contender], environment | extra, rehearse.ROOT)
        for name, (contender, extra) in arguments().items()
    }


def rows(rounds: int) -> list[str]:
    """serving.py's table rows for the function as built, with their goal."""
    contenders = runs()
    if not contenders:
        return []
    cold = {name: values for (_, name), values in measure_cold_starts(contenders, rounds).items()}
    ours, bare, floor, plain = cold["as built"], cold["bare"], cold["bare + powertools"], cold["no bytecode"]
    own = [mine - (with_powertools - alone) for mine, with_powertools, alone in zip(ours, floor, bare, strict=True)]
    ratio = paired_ratio(own, bare)
    label = "as built (x86_64 root, python3.13) cold start"
    return [
        row(f"{label} less powertools' import vs bare onnxruntime", median_ms(own), median_ms(bare), "ms",
            "<= 1.25x", ratio <= 1.25, ratio),
        row(f"{label}, whole function, vs bare onnxruntime", median_ms(ours), median_ms(bare), "ms", "-", None,
            paired_ratio(ours, bare)),
        row(f"{label} without bytecode vs with", median_ms(plain), median_ms(ours), "ms",
            f"+{median_ms(plain) - median_ms(ours):,.0f} ms at every cold start", None, paired_ratio(plain, ours)),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args()
    print("\n".join(["| figure | ours | baseline | ratio | goal | result |", "|---|---|---|---|---|---|"]))
    print("\n".join(rows(args.rounds)))


if __name__ == "__main__":
    main()
