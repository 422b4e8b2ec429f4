"""Cold start as built: `make rehearse`'s x86_64 `sam build` output in its Debian root, on the runtime's Python.

    .venv/bin/python -m benchmarks.as_built [--rounds 21]      (benchmarks/serving.py prints these rows too)

Four contenders, each a fresh `python3.13 -I -S -B` in the x86_64 rehearsal root (Lambda's environment from
the template, /var/task and /opt as Lambda lays them out, no bytecode written), in shuffled rounds:
the built function answering events/predict.json; the same build with every __pycache__ removed (what a build
without a python3.13 ships: Lambda compiles it at every cold start); bare numpy + onnxruntime on the same
model; and bare plus `import aws_lambda_powertools`. Goal, as benchmarks/serving.py's: the function's cold
start less what powertools' import costs bare in the same round <= 1.25x bare. Needs root and build/rehearsal
(`make rehearse`); without them it prints one line saying so and no rows.
"""

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from benchmarks.serving import CONTEXT, EVENT, measure_cold_starts, median_ms, paired_ratio, row
from scripts import rehearsal_root, rehearse

BUILT = rehearse.ROOT / "build" / "rehearsal" / "x86_64"
Runs = dict[tuple[str, str], tuple[list[str], dict[str, str], Path]]


def scripts(event: str) -> dict[str, tuple[str, dict[str, str]]]:
    """Each contender's script and the variables it sets over Lambda's environment."""
    ours = """
import json, sys
sys.path[:0] = ["{task}", "{opt}/python"]
import app
{context}
response = app.lambda_handler(json.loads({event!r}), Context())
assert response["statusCode"] == 200, response
"""
    bare = """
import json, sys
sys.path[:0] = ["/opt/python"]
import numpy as np, onnxruntime as ort{extra}
features = np.asarray(json.loads(json.loads({event!r})["body"])["instances"], dtype=np.float32)
session = ort.InferenceSession("/var/task/model/model.onnx", providers=["CPUExecutionProvider"])
(probabilities,) = session.run(None, {{"features": features}})
print(json.dumps({{"predictions": probabilities.argmax(axis=1).tolist(), "probabilities": probabilities.tolist()}}))
"""
    plain = {"task": "/var/task-no-bytecode", "opt": "/opt-no-bytecode"}
    return {
        "as built": (ours.format(task="/var/task", opt="/opt", context=CONTEXT, event=event), {}),
        "no bytecode": (ours.format(**plain, context=CONTEXT, event=event), {"LAMBDA_TASK_ROOT": plain["task"]}),
        "bare": (bare.format(extra="", event=event), {}),
        "bare + powertools": (bare.format(extra="\nimport aws_lambda_powertools", event=event), {}),
    }


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
    command = [*rehearsal_root.python_command(root, "x86_64"), "-I", "-S", "-B", "-c"]
    event = json.dumps(json.loads(EVENT.read_text()))
    return {
        ("as built", name): ([*command, script], environment | extra, rehearse.ROOT)
        for name, (script, extra) in scripts(event).items()
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
