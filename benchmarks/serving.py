"""Serving figures for the Lambda function, each against a baseline measured in the same run.

For two MLPs with 64 inputs (the digits model's shape, and a wider one), exported with
torch.onnx.export(dynamo=True), it measures:
  cold start: a fresh process that imports, loads and answers events/predict.json through
              lambda_handler, vs (a) a naive PyTorch handler (torch.load of a state dict + model(x))
              and (b) bare numpy + onnxruntime;
  warm:       lambda_handler p50/p99 at batch 1 and 64 vs session.run alone, and the cost of parsing
              the body and writing the answer with orjson;
  size:       function + layer, unzipped and zipped, vs the PyTorch baseline's dependencies.
Goals: cold start <= 0.15x naive and <= 1.25x bare; warm <= 2.0x session.run at batch 1 and, at batch
64, an excess over session.run of at most 1.5x the JSON work; <= 0.20x PyTorch's size, <= 50 MB zipped.
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

Run: .venv/bin/python benchmarks/serving.py [--quick] [--rounds 21] [--source CHECKOUT] [--work DIR]
"""

import argparse
import csv
import hashlib
import importlib.metadata
import json
import math
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from packaging.requirements import Requirement
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
EVENT = ROOT / "events" / "predict.json"
DIGITS = ROOT / "examples" / "data" / "digits.csv"
LABELS = [str(digit) for digit in range(10)]
ARCH = {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine()]
PYTHON_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
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
TRACED_ENV = {"POWERTOOLS_TRACE_DISABLED": "false"}
CONTEXT = """
class Context:
    function_name, function_version, memory_limit_in_mb, aws_request_id = "PredictFunction", "$LATEST", 1024, "id"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:PredictFunction"
"""


@dataclass(frozen=True)
class Spec:
    name: str
    hidden: tuple[int, ...]


@dataclass(frozen=True)
class Effort:
    rounds: int  # cold starts per contender
    warmup: int  # warm rounds discarded
    n1: int  # warm rounds measured at batch 1
    n64: int  # and at batch 64


SPECS = [Spec("digits-mlp", (128, 128)), Spec("wide-mlp", (1024, 1024, 1024))]
FULL, QUICK = Effort(rounds=21, warmup=200, n1=2000, n64=1000), Effort(rounds=4, warmup=100, n1=800, n64=200)
NAIVE_EVERY = 3


class Classifier(nn.Module):
    """Standardise, MLP, softmax: the graph the bundle contract asks for."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        layers: list[nn.Module] = []
        width = mean.numel()
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, len(LABELS)))
        self.net = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net((features - self.mean) / self.std), dim=-1)


def digits_rows() -> np.ndarray:
    with DIGITS.open() as file:
        return np.asarray([row[:-1] for row in list(csv.reader(file))[1:]], dtype=np.float32)


def export_bundle(spec: Spec, rows: np.ndarray, bundle: Path, state_path: Path) -> None:
    """Export the (untrained, seeded) model as a bundle with a full card, and save its state dict."""
    torch.manual_seed(0)
    mean, std = torch.from_numpy(rows.mean(axis=0)), torch.from_numpy(rows.std(axis=0) + 1e-6)
    model = Classifier(mean, std, spec.hidden).eval()
    torch.save(model.state_dict(), state_path)
    shutil.rmtree(bundle, ignore_errors=True)  # drop whatever bundle the source checkout had promoted
    bundle.mkdir(parents=True)
    onnx_path = bundle / "model.onnx"
    program = torch.onnx.export(
        model,
        (torch.zeros(2, 64),),
        dynamo=True,
        input_names=["features"],
        output_names=["probabilities"],
        dynamic_shapes=({0: "batch"},),
        external_data=False,
        verbose=False,
    )
    assert program is not None
    program.save(onnx_path, external_data=False)
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    sample = rows[:3]
    (outputs,) = session.run(None, {"features": sample})
    with torch.no_grad():
        parity = float(np.abs(outputs - model(torch.from_numpy(sample)).numpy()).max())
    card = {
        "format": "serverless-ml.bundle/1",
        "name": spec.name,
        "version": "bench",
        "task": "classification",
        "input": {"name": "features", "shape": [None, 64], "dtype": "float32", "feature_names": []},
        "outputs": ["probabilities"],
        "labels": LABELS,
        "metrics": {},
        "sample": {"instances": sample.tolist(), "outputs": outputs.tolist()},
        "training": {"config": {"hidden": list(spec.hidden), "trained": False}},
        "export": {"opset": 18, "torch": torch.__version__, "parity_max_abs_error": parity},
        "sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
    }
    (bundle / "model.json").write_text(json.dumps(card))


def make_command(source: Path, folder: str, target: str, artifacts: Path, **variables: str) -> list[str]:
    settings = [f"{name}={value}" for name, value in variables.items()]
    command = [
        "make",
        "-s",
        "-C",
        str(source / folder),
        target,
        f"ARTIFACTS_DIR={artifacts}",
        f"PYTHON={sys.executable}",
    ]
    return command + settings


def start_layer_builds(source: Path, cache: Path) -> dict[str, tuple[Path, subprocess.Popen[bytes] | None]]:
    """Build the layer for this machine (to run) and for Lambda arm64 (to size) side by side.

    pip spends most of a build waiting on downloads, so the two overlap well; a layer is reused while
    its requirements, Makefile and settings are unchanged.
    """
    folder = source / "layers" / "onnxruntime"
    recipe = (folder / "requirements.txt").read_bytes() + (folder / "Makefile").read_bytes()
    builds: dict[str, tuple[Path, subprocess.Popen[bytes] | None]] = {}
    for name, variables in {
        "local": {"ARCH": ARCH, "PYTHON_VERSION": PYTHON_VERSION, "PYC_PYTHON": sys.executable},
        "arm64": {"ARCH": "arm64"},
    }.items():
        key = hashlib.sha256(recipe + json.dumps([sys.executable, variables]).encode()).hexdigest()[
            :12
        ]  # pip's Python too
        artifacts = cache / f"layer-{name}-{key}"
        if (artifacts / "built").exists():
            builds[name] = (artifacts, None)
            continue
        shutil.rmtree(artifacts, ignore_errors=True)
        command = make_command(source, "layers/onnxruntime", "build-OnnxRuntimeLayer", artifacts, **variables)
        builds[name] = (artifacts, subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    return builds


def finish_layer_builds(builds: dict[str, tuple[Path, subprocess.Popen[bytes] | None]]) -> dict[str, Path]:
    for name, (artifacts, process) in builds.items():
        if process is not None:
            _, stderr = process.communicate()
            if process.returncode != 0:
                raise RuntimeError(f"layer build {name} failed: {stderr.decode()[-2000:]}")
            (artifacts / "built").touch()
    return {name: artifacts / "python" for name, (artifacts, _) in builds.items()}


def run_python(args: list[str], env: dict[str, str], cwd: Path) -> float:
    """Wall time of one fresh process, start to exit."""
    started = time.perf_counter()
    result = subprocess.run(args, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{args[:3]} failed: {result.stderr.decode()[-2000:]}")
    return elapsed


def cold_start_scripts(
    function: Path, layer: Path, runtime: Path, state_path: Path, spec: Spec
) -> dict[str, tuple[list[str], dict[str, str]]]:
    """Each contender's command line, and the variables it sets over the model's Lambda environment."""
    ours = f"""
import json, sys
sys.path[:0] = [{str(function)!r}, {str(layer)!r}]
sys.path.append({str(runtime)!r})
import app
{CONTEXT}
response = app.lambda_handler(json.loads(open({str(EVENT)!r}).read()), Context())
assert response["statusCode"] == 200, response
"""
    bare = f"""
import json, sys
sys.path[:0] = [{str(layer)!r}]
sys.path.append({str(runtime)!r})
import numpy as np, onnxruntime as ort
event = json.loads(open({str(EVENT)!r}).read())
features = np.asarray(json.loads(event["body"])["instances"], dtype=np.float32)
session = ort.InferenceSession({str(function / "model" / "model.onnx")!r}, providers=["CPUExecutionProvider"])
(probabilities,) = session.run(None, {{"features": features}})
print(json.dumps({{"predictions": probabilities.argmax(axis=1).tolist(), "probabilities": probabilities.tolist()}}))
"""
    naive = f"""
import json
import torch
from torch import nn

class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.zeros(64))
        self.register_buffer("std", torch.ones(64))
        sizes = [64, *{list(spec.hidden)!r}]
        layers = []
        for width, size in zip(sizes, sizes[1:]):
            layers += [nn.Linear(width, size), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], 10))
        self.net = nn.Sequential(*layers)

    def forward(self, features):
        return torch.softmax(self.net((features - self.mean) / self.std), dim=-1)

model = Classifier()
model.load_state_dict(torch.load({str(state_path)!r}))
model.eval()
event = json.loads(open({str(EVENT)!r}).read())
with torch.no_grad():
    probabilities = model(torch.tensor(json.loads(event["body"])["instances"], dtype=torch.float32))
print(json.dumps({{"predictions": probabilities.argmax(dim=1).tolist(), "probabilities": probabilities.tolist()}}))
"""
    # The floor for any function that uses powertools: bare plus the import of its package.
    with_powertools = bare.replace("onnxruntime as ort\n", "onnxruntime as ort\nimport aws_lambda_powertools\n")
    assert with_powertools != bare
    return {
        "ours": ([sys.executable, "-S", "-c", ours], {}),
        "ours traced": ([sys.executable, "-S", "-c", ours], TRACED_ENV),
        "bare": ([sys.executable, "-S", "-c", bare], {}),
        "bare + powertools": ([sys.executable, "-S", "-c", with_powertools], {}),
        "naive": ([sys.executable, "-c", naive], {}),
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


def measured(values: list[float]) -> list[float]:
    """The rounds a contender ran in."""
    return [value for value in values if not math.isnan(value)]


def median_ms(values: list[float]) -> float:
    return statistics.median(measured(values)) * 1e3


WARM = """
import json, random, sys, time
sys.path[:0] = [{function!r}, {layer!r}]
sys.path.append({runtime!r})
import app, numpy as np, orjson, predict
from aws_lambda_powertools.metrics import MetricUnit
{context}
context = Context()

def observe(event, context):
    # What powertools adds to each prediction: the Logger and Metrics wrappers, the correlation id and
    # the two metrics, as app.lambda_handler and app.answer_predict call them.
    app.logger.set_correlation_id(event["requestContext"]["requestId"])
    app.metrics.add_metric(name="Predictions", unit=MetricUnit.Count, value=1)
    app.metrics.add_metric(name="ModelLatency", unit=MetricUnit.Milliseconds, value=0.1)
    return {{}}
powertools = app.with_observability(observe)
event = json.loads(open({event!r}).read())
rows = np.loadtxt({digits!r}, delimiter=",", skiprows=1, dtype=np.float32)[:, :-1]

def percentiles(calls, n, warmup):
    # Round-robin, so the machine's load hits every contender alike, each round in a shuffled order, so none
    # always runs right after another left the model's weights in cache; the first rounds warm up.
    samples = {{name: [] for name in calls}}
    names, shuffler = list(calls), random.Random(0)
    for i in range(n + warmup):
        shuffler.shuffle(names)
        for name in names:
            started = time.perf_counter()
            calls[name]()
            if i >= warmup:
                samples[name].append(time.perf_counter() - started)
    ranked = {{name: sorted(values) for name, values in samples.items()}}
    return {{name: {{"p50": v[n // 2] * 1e6, "p99": v[int(n * 0.99)] * 1e6}} for name, v in ranked.items()}}

results = {{}}
for batch, n in ((1, {n1}), (64, {n64})):
    # Floats, as tabular clients send them: the digits' pixel intensities (0 to 16) scaled to [0, 1].
    body = json.dumps({{"instances": (rows[:batch] / 16).tolist()}})
    request = dict(event, body=body)
    features = np.asarray(json.loads(body)["instances"], dtype=np.float32)
    labels = app.MODEL.labels
    probabilities = app.MODEL.predict(features)
    def handler():
        assert app.lambda_handler(request, context)["statusCode"] == 200
    def own():
        # The function's own work for POST /predict (predict.py): no routing, logs or metrics.
        predict.serialize(predict.predict(app.MODEL, request, app.MAX_BATCH, app.ROWS_FIT).answer)
    def run():
        app.MODEL.session.run(["probabilities"], {{"features": features}})
    def parse():
        return np.asarray(orjson.loads(body)["instances"], dtype=np.float32)
    def write(scores):
        predictions = [labels[i] for i in scores.argmax(axis=1).tolist()]
        answer = {{"predictions": predictions, "probabilities": scores, "labels": labels, "model": {{}}}}
        orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
    def io():
        parse()
        write(probabilities)
    def minimal():
        # The floor for any handler: the same work in one call, with no checks, logs or metrics.
        (scores,) = app.MODEL.session.run(["probabilities"], {{"features": parse()}})
        write(scores)
    calls = {{"handler": handler, "own": own, "run": run, "io": io, "minimal": minimal}}
    def run_then_powertools():
        # In the function powertools flushes right after the model, which has just left the caches cold.
        run()
        powertools(request, context)
    calls["run + powertools"] = run_then_powertools
    results[batch] = percentiles(calls, n, {warmup})
open({out!r}, "w").write(json.dumps(results))
"""


def measure_warm(
    function: Path, layer: Path, runtime: Path, env: dict[str, str], out: Path, effort: Effort
) -> dict[int, Any]:
    script = WARM.format(
        function=str(function), layer=str(layer), runtime=str(runtime), context=CONTEXT, event=str(EVENT),
        digits=str(DIGITS), out=str(out), n1=effort.n1, n64=effort.n64, warmup=effort.warmup,
    )  # fmt: skip
    run_python([sys.executable, "-S", "-c", script], env, function)
    return {int(batch): figures for batch, figures in json.loads(out.read_text()).items()}


def folder_size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def zipped_size(folder: Path) -> int:
    with tempfile.TemporaryDirectory() as scratch:
        archive = Path(scratch) / "package.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as package:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    package.write(path, path.relative_to(folder))
        return archive.stat().st_size


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
    run, io, minimal, handler = (calls[name]["p50"] for name in ("run", "io", "minimal", "handler"))
    info = (
        ("whole function", handler, f"excess {handler - run:,.0f} us"),
        ("powertools' share (Logger, Metrics)", calls["run + powertools"]["p50"] - run, "-"),
        ("minimal handler", minimal, f"excess {minimal - run:,.0f}, io {io:,.0f} us"),
    )
    for label, value, note in info:
        lines.append(row(f"{model} warm p50 batch {batch}, {label}, vs session.run", value, run, "us", note, None))
    return lines


def build(source: Path, work: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """The layers (local, arm64) and one function per model, each with its bundle promoted into it."""
    builds = start_layer_builds(source, work)
    rows = digits_rows()
    functions: dict[str, Path] = {}
    for spec in SPECS:
        artifacts = work / spec.name / "function"
        build = make_command(source, "functions/predict", "build-PredictFunction", artifacts,
                             PYC_PYTHON=sys.executable, PYTHON_VERSION=PYTHON_VERSION)  # fmt: skip
        subprocess.run(build, check=True, capture_output=True)
        export_bundle(spec, rows, artifacts / "model", work / spec.name / "model.pt")
        functions[spec.name] = artifacts
    return finish_layer_builds(builds), functions


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
        for contender, (command, extra_env) in cold_start_scripts(
            functions[spec.name], layers["local"], runtime, work / spec.name / "model.pt", spec
        ).items()
    }
    print(f"cold starts: {rounds} rounds of {len(runs)} contenders, shuffled; naive every {NAIVE_EVERY}rd round")
    cold = measure_cold_starts(runs, rounds)
    warm = {}
    for spec in SPECS:
        print(f"{spec.name}: warm latency")
        warm[spec.name] = measure_warm(functions[spec.name], layers["local"], runtime, envs[spec.name],
                                       work / spec.name / "warm.json", effort)  # fmt: skip
    digits = SPECS[0].name
    print(f"{digits}: warm latency with tracing on")
    traced = measure_warm(functions[digits], layers["local"], runtime, envs[digits] | TRACED_ENV,
                          work / digits / "warm-traced.json", effort)  # fmt: skip
    lines = figures(cold, warm, traced, layers, functions[digits])
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
