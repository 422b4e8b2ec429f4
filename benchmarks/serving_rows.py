"""Serving figures for rows keyed by feature name and for categorical inputs: `info` rows, no goals.

The numeric path's goals are serving.py's and these forms must not touch them: positional rows of a
numeric model never load records.py. What the other forms cost, at batch 1 and 64, against session.run
on the same inputs (benchmarks/warm_rows.py, in a fresh process, round-robin as warm.py):
  digits-mlp:   the function's own work for rows as lists and as objects keyed by its 64 feature names;
  penguins-mlp: a model with categorical inputs (island, sex; trained for a few epochs by the training
                code), rows as lists in card order and as objects.

serving.py measures the built function and layer. Alone, this measures the checkout's function with this
interpreter's packages: .venv/bin/python -m benchmarks.serving_rows [--n1 800] [--n64 200]
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

from benchmarks.serving_build import DIGITS, EVENT, ROOT
from benchmarks.serving_cold import run_python
from benchmarks.serving_report import row

PENGUINS = ROOT / "examples" / "data" / "penguins.csv"


def penguins_function(function: Path, work: Path) -> Path:
    """A copy of the `function` folder serving a penguins bundle, trained and exported by the training code."""
    from training.__main__ import train
    from training.config import TrainConfig

    bundle, target = work / "penguins-bundle", work / "penguins-function"
    for folder in (bundle, target):
        shutil.rmtree(folder, ignore_errors=True)
    train(TrainConfig(data=str(PENGUINS), target="species", name="penguins-mlp", out=str(bundle), epochs=15))
    shutil.copytree(function, target, ignore=shutil.ignore_patterns("model"))
    shutil.copytree(bundle, target / "model", ignore=shutil.ignore_patterns("*.png"))
    return target


def rows_figures(
    functions: dict[str, Path], layer: Path, runtime: Path, env: dict[str, str], work: Path, n1: int, n64: int,
    isolated: bool = True,
) -> list[str]:  # fmt: skip
    """The table's rows for digits-mlp's `function` and a penguins copy of it (`isolated`: python -S)."""
    work.mkdir(parents=True, exist_ok=True)
    functions = {**functions, "penguins-mlp": penguins_function(functions["digits-mlp"], work)}
    lines = []
    for name, data in (("digits-mlp", DIGITS), ("penguins-mlp", PENGUINS)):
        out = work / f"{name}-rows.json"
        options = {"--function": functions[name], "--layer": layer, "--runtime": runtime, "--event": EVENT,
                   "--data": data, "--out": out, "--n1": n1, "--n64": n64, "--warmup": max(50, n64 // 4)}  # fmt: skip
        flags = ["-S"] if isolated else []
        arguments = [str(part) for option in options.items() for part in option]
        run_python([sys.executable, *flags, "-m", "benchmarks.warm_rows", *arguments], env, ROOT)
        for batch, calls in json.loads(out.read_text()).items():
            run = calls["run"]["p50"]
            for form in ("positional", "named"):
                label = f"{name} warm p50 batch {batch}, own work, rows {form}, vs session.run"
                lines.append(row(label, calls[f"own {form}"]["p50"], run, "us", "-", None))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n1", type=int, default=800)
    parser.add_argument("--n64", type=int, default=200)
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "bench-serving-rows")
    args = parser.parse_args()
    work = args.work.resolve()
    function = work / "digits-function"
    shutil.rmtree(function, ignore_errors=True)
    shutil.copytree(ROOT / "functions" / "predict", function, ignore=shutil.ignore_patterns("model", "__pycache__"))
    from benchmarks.serving_build import SPECS, make_bundle

    make_bundle(SPECS[0], function / "model", work / "digits.pt")
    env = {"MODEL_DIR": "model", "MAX_BATCH": "256", "POWERTOOLS_SERVICE_NAME": "predict", "PATH": "/usr/bin:/bin",
           "POWERTOOLS_METRICS_NAMESPACE": "ServerlessML", "POWERTOOLS_TRACE_DISABLED": "true"}  # fmt: skip
    site = next(path for path in sys.path if path.endswith("site-packages"))
    lines = rows_figures({"digits-mlp": function}, Path(site), Path(site), env, work, args.n1, args.n64, False)
    print("\n".join(["| figure | ours | baseline | ratio | goal | result |", "|---|---|---|---|---|---|", *lines]))


if __name__ == "__main__":
    main()
