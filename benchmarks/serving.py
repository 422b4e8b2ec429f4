"""Serving figures for the Lambda function, each against a baseline measured in the same run.

For two MLPs with 64 inputs (the digits model's shape, and a wider one; untrained, seeded), each
exported into a bundle by the training code's exporter, it measures:
  cold start: a fresh process that imports, loads and answers events/predict.json through
              lambda_handler, vs (a) a naive PyTorch handler (torch.load of a state dict + model(x))
              and (b) bare numpy + onnxruntime;
  warm:       lambda_handler p50/p99 at batch 1 and 64 vs session.run alone, and the cost of parsing
              the body and writing the answer with orjson;
  size:       function + layer, unzipped and zipped, vs the PyTorch baseline's dependencies.
Goals: cold start <= 0.15x naive and <= 1.25x bare; warm <= 2.0x session.run at batch 1 and, at batch
64, an excess over session.run of at most 1.5x the JSON work; <= 0.20x PyTorch's size, <= 50 MB zipped;
v2 infer (the Open Inference Protocol), JSON and binary, warm p50 <= 1.2x POST /predict's whole function
(binary at batch 64: below it).
The function must use powertools (Logger, Metrics, Tracer), which alone costs more than the goals for
bare and session.run allow: its import is ~1.2x bare's whole cold start, and its share of a request
(Logger and Metrics wrappers, correlation id, two metrics, the EMF flush) ~3x the digits model's
session.run. So those goals apply to what the function adds besides powertools: a cold start less what
`import aws_lambda_powertools` costs bare in the same round, and, warm, the function's own work
(predict.py: body, checks, model, answer), timed alone. The whole function's figures stay in the table.
Fairness: cold starts run in shuffled rounds of every contender for both models (the naive one, ~10x
slower and far from its goal, every third round), so the machine's load hits all alike; a cold-start
ratio is the median of each round's ratio. Warm figures are taken
round-robin, each round in a shuffled order, in one process on the same inputs. Our function runs
from the folders the SAM Makefiles build, layer and function with bytecode, with `python -S` and
only what Lambda's python3.13 runtime can import (the stdlib, function, layer, then boto3 and its
dependencies, as the runtime ships them) and PYTHONDONTWRITEBYTECODE (Lambda's /var/task is
read-only), in Lambda's environment variables as template.yaml sets them by default: LAMBDA_TASK_ROOT,
an X-Ray trace header with Sampled=1, and POWERTOOLS_TRACE_DISABLED=true.
Requests carry floats, as tabular clients send them. Rows marked `info` have no goal; they say where
the time goes: the whole function, with tracing on too (PowertoolsTraceDisabled=false: Tracer sends
every subsegment to 127.0.0.1, where nothing listens); powertools' shares (warm: its calls around an
empty handler, right after session.run, as in the function); and a minimal handler (orjson →
session.run → orjson in one call, no checks, logs or metrics), the floor for any handler. The last rows, from
benchmarks/as_built.py, measure `make rehearse`'s x86_64 build in its root on the runtime's python3.13,
with and without bytecode (none without root and `make rehearse`).

Modules: serving_build (layers, functions, bundles), cold_start and warm (what the fresh processes run),
serving_cold (cold-start rounds), serving_sealed (the digits model sealed with a key in moto's KMS on
127.0.0.1: `sml promote --kms-key`'s cold start, an info row), serving_sizes, serving_report (the table);
classifier (the model); serving_rows and warm_rows (`info` rows: rows keyed by feature name, and a model
with categorical inputs).

Run: .venv/bin/python benchmarks/serving.py [--quick] [--rounds 21] [--source CHECKOUT] [--work DIR]
"""

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnxruntime as ort

if not __package__:  # run as benchmarks/serving.py: sys.path[0] is benchmarks/; the package needs the root there
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from benchmarks.serving_build import ARCH, DIGITS, EVENT, PYTHON_VERSION, ROOT, SPECS, build
from benchmarks.serving_cold import NAIVE_EVERY, TRACED_ENV, cold_start_commands, measure_cold_starts, run_python
from benchmarks.serving_report import figures, measured, median_ms
from benchmarks.serving_rows import rows_figures
from benchmarks.serving_sealed import CONTENDER as SEALED
from benchmarks.serving_sealed import sealed_function, sealed_row
from benchmarks.serving_sizes import lambda_runtime_packages

LAMBDA_ENV = {
    "AWS_LAMBDA_FUNCTION_NAME": "PredictFunction",
    "AWS_REGION": "eu-west-1",
    "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
    "_X_AMZN_TRACE_ID": "Root=1-6745d2de-0a1b2c3d4e5f60718293a4b5;Parent=53995c3f42cd8ad8;Sampled=1",
    "POWERTOOLS_SERVICE_NAME": "predict",
    "POWERTOOLS_METRICS_NAMESPACE": "ServerlessML",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "MODEL_DIR": "model",
    "MAX_BATCH": "256",
    "ORT_INTRA_OP_THREADS": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PATH": "/usr/bin:/bin",
}


@dataclass(frozen=True)
class Effort:
    rounds: int  # cold starts per contender
    warmup: int  # warm rounds discarded
    n1: int  # warm rounds measured at batch 1
    n64: int  # and at batch 64


FULL, QUICK = Effort(rounds=21, warmup=200, n1=2000, n64=1000), Effort(rounds=4, warmup=100, n1=800, n64=200)


def measure_warm(
    function: Path, layer: Path, runtime: Path, env: dict[str, str], out: Path, effort: Effort
) -> dict[int, Any]:
    """benchmarks/warm.py's figures, in a fresh process from the checkout's root (for `-m`)."""
    options = {"--function": function, "--layer": layer, "--runtime": runtime, "--event": EVENT, "--digits": DIGITS,
               "--out": out, "--n1": effort.n1, "--n64": effort.n64, "--warmup": effort.warmup}  # fmt: skip
    arguments = [str(part) for option in options.items() for part in option]
    run_python([sys.executable, "-S", "-m", "benchmarks.warm", *arguments], env, ROOT)
    return {int(batch): figures for batch, figures in json.loads(out.read_text()).items()}


def as_built_rows(rounds: int) -> list[str]:
    """benchmarks/as_built.py's rows, measured in a process of their own."""
    command = [sys.executable, "-m", "benchmarks.as_built", "--rounds", str(rounds)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    sys.stderr.write(result.stderr)
    return [line for line in result.stdout.splitlines() if line.startswith("| as built")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 rounds of cold starts and fewer warm calls")
    parser.add_argument("--rounds", type=int, help="rounds of cold starts (default 21, 4 with --quick)")
    parser.add_argument("--source", type=Path, default=ROOT, help="checkout whose function and layer to measure")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "bench-serving")
    args = parser.parse_args()
    effort = QUICK if args.quick else FULL
    rounds = args.rounds or effort.rounds
    source, work = args.source.resolve(), args.work.resolve()
    for spec in SPECS:
        shutil.rmtree(work / spec.name, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    started, load_before = time.perf_counter(), os.getloadavg()[0]

    print(f"building {source}: layers for this machine ({ARCH}, python {PYTHON_VERSION}) and Lambda (arm64)")
    layers, functions = build(source, work)
    runtime = lambda_runtime_packages(work / "runtime")
    envs = {spec.name: LAMBDA_ENV | {"LAMBDA_TASK_ROOT": str(functions[spec.name])} for spec in SPECS}
    runs = {
        (spec.name, contender): (command, envs[spec.name] | extra_env, functions[spec.name])
        for spec in SPECS
        for contender, (command, extra_env) in cold_start_commands(
            functions[spec.name], layers["local"], runtime, work / spec.name / "model.pt", spec
        ).items()
    }
    digits = SPECS[0].name
    with sealed_function(functions[digits], work / digits) as (sealed, aws):  # KMS: moto on 127.0.0.1
        command, _ = cold_start_commands(sealed, layers["local"], runtime, work / digits / "model.pt", SPECS[0])["ours"]
        runs[digits, SEALED] = (command, envs[digits] | {"LAMBDA_TASK_ROOT": str(sealed)} | aws, sealed)
        print(f"cold starts: {rounds} rounds of {len(runs)} contenders, shuffled; naive every {NAIVE_EVERY}rd round")
        cold = measure_cold_starts(runs, rounds)
    warm = {}
    for spec in SPECS:
        print(f"{spec.name}: warm latency")
        warm[spec.name] = measure_warm(functions[spec.name], layers["local"], runtime, envs[spec.name],
                                       work / spec.name / "warm.json", effort)  # fmt: skip
    print(f"{digits}: warm latency with tracing on")
    traced = measure_warm(functions[digits], layers["local"], runtime, envs[digits] | TRACED_ENV,
                          work / digits / "warm-traced.json", effort)  # fmt: skip
    lines = figures(cold, warm, traced, layers, functions[digits])
    lines.append(sealed_row(cold, digits))
    print("rows by feature name and categorical inputs: warm latency (benchmarks/serving_rows.py)")
    lines += rows_figures({digits: functions[digits]}, layers["local"], runtime, envs[digits], work / "rows",
                          effort.n1, effort.n64)  # fmt: skip
    print("as built: cold starts in make rehearse's x86_64 root")
    lines += as_built_rows(rounds)

    spread = ["| cold start | median | min | max |", "|---|---|---|---|"]
    for (spec_name, contender), all_rounds in cold.items():
        values = measured(all_rounds)
        low, mid, high = min(values) * 1e3, median_ms(values), max(values) * 1e3
        spread.append(f"| {spec_name} {contender} | {mid:,.0f} ms | {low:,.0f} ms | {high:,.0f} ms |")
    # null, not NaN (which is not JSON), for the rounds the naive baseline sat out
    cold_s = {f"{s} {c}": [None if math.isnan(v) else v for v in values] for (s, c), values in cold.items()}
    results = {"cold_s": cold_s, "warm_us": warm, "traced_warm_us": traced}
    (work / "results.json").write_text(json.dumps(results, indent=1))
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}, "
          f"onnxruntime {ort.__version__}; load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after; "
          f"{rounds} rounds of cold starts; {time.perf_counter() - started:.0f} s")  # fmt: skip
    print("\n".join(spread))
    print()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
