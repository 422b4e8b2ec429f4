"""Serving figures for the Lambda function, each against a baseline measured in the same run.

For two MLPs with 64 inputs (the digits model's shape, and a wider one), exported with
torch.onnx.export(dynamo=True), it measures:
  cold start: a fresh process that imports, loads and answers events/predict.json through
              lambda_handler, vs (a) a naive PyTorch handler (torch.load of a state dict + model(x))
              and (b) bare numpy + onnxruntime;
  warm:       lambda_handler p50/p99 at batch 1 and 64 vs session.run alone, and the cost of parsing
              the body and writing the answer with orjson;
  size:       function + layer, unzipped and zipped, vs the PyTorch baseline's dependencies.
Our function runs from the folders the SAM Makefiles build (layer built for this machine's Python,
with bytecode), with `python -S`, so nothing else is importable, in Lambda's environment variables
(LAMBDA_TASK_ROOT, an X-Ray trace header; the X-Ray daemon address is 127.0.0.1, where nothing listens).

Run: .venv/bin/python benchmarks/serving.py [--repeats 7] [--work build/bench-serving]
"""

import argparse
import csv
import hashlib
import importlib.metadata
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

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
LAMBDA_ENV = {
    "AWS_LAMBDA_FUNCTION_NAME": "PredictFunction",
    "AWS_REGION": "eu-west-1",
    "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
    "_X_AMZN_TRACE_ID": "Root=1-6745d2de-0a1b2c3d4e5f60718293a4b5;Parent=53995c3f42cd8ad8;Sampled=1",
    "POWERTOOLS_SERVICE_NAME": "predict",
    "POWERTOOLS_METRICS_NAMESPACE": "ServerlessML",
    "MODEL_DIR": "model",
    "MAX_BATCH": "256",
    "ORT_INTRA_OP_THREADS": "1",
}
CONTEXT = """
class Context:
    function_name, function_version, memory_limit_in_mb, aws_request_id = "PredictFunction", "$LATEST", 1024, "id"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:PredictFunction"
"""


@dataclass(frozen=True)
class Spec:
    name: str
    hidden: tuple[int, ...]


SPECS = [Spec("digits-mlp", (128, 128)), Spec("wide-mlp", (1024, 1024, 1024))]


class Classifier(nn.Module):
    """Standardise, MLP, softmax: the graph the bundle contract asks for."""

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
    bundle.mkdir(parents=True, exist_ok=True)
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


def make(target: str, folder: str, artifacts: Path, **variables: str) -> Path:
    settings = [f"{name}={value}" for name, value in variables.items()]
    command = ["make", "-s", "-C", str(ROOT / folder), target, f"ARTIFACTS_DIR={artifacts}", f"PYTHON={sys.executable}"]
    subprocess.run([*command, *settings], check=True, capture_output=True)
    return artifacts


def run_python(args: list[str], env: dict[str, str], cwd: Path) -> float:
    """Wall time of one fresh process, start to exit."""
    started = time.perf_counter()
    result = subprocess.run(args, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{args[:3]} failed: {result.stderr.decode()[-2000:]}")
    return elapsed


def cold_start_commands(
    function: Path, layer: Path, bundle: Path, state_path: Path, spec: Spec
) -> dict[str, list[str]]:
    ours = f"""
import json, sys
sys.path[:0] = [{str(function)!r}, {str(layer)!r}]
import app
{CONTEXT}
response = app.lambda_handler(json.loads(open({str(EVENT)!r}).read()), Context())
assert response["statusCode"] == 200, response
"""
    bare = f"""
import json, sys
sys.path[:0] = [{str(layer)!r}]
import numpy as np, onnxruntime as ort
event = json.loads(open({str(EVENT)!r}).read())
features = np.asarray(json.loads(event["body"])["instances"], dtype=np.float32)
session = ort.InferenceSession({str(bundle / "model.onnx")!r}, providers=["CPUExecutionProvider"])
(probabilities,) = session.run(None, {{"features": features}})
print(json.dumps({{"predictions": probabilities.argmax(axis=1).tolist(), "probabilities": probabilities.tolist()}}))
"""
    naive = f"""
import json
import torch
from packaging.requirements import Requirement
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
    return {
        "ours": [sys.executable, "-S", "-c", ours],
        "bare": [sys.executable, "-S", "-c", bare],
        "naive": [sys.executable, "-c", naive],
    }


def measure_cold_starts(
    commands: dict[str, list[str]], env: dict[str, str], cwd: Path, repeats: int
) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeats):  # interleaved, so load on the machine hits every contender alike
        for name, command in commands.items():
            times[name].append(run_python(command, env, cwd))
    return {name: statistics.median(values) for name, values in times.items()}


WARM = """
import json, sys, time
sys.path[:0] = [{function!r}, {layer!r}]
import app, numpy as np, orjson
{context}
context = Context()
event = json.loads(open({event!r}).read())
rows = np.loadtxt({digits!r}, delimiter=",", skiprows=1, dtype=np.float32)[:, :-1]

def percentiles(calls, n):
    # Round-robin, so the machine's load hits every contender alike; the first 200 rounds warm up.
    samples = {{name: [] for name in calls}}
    for i in range(n + 200):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            if i >= 200:
                samples[name].append(time.perf_counter() - started)
    ranked = {{name: sorted(values) for name, values in samples.items()}}
    return {{name: {{"p50": v[n // 2] * 1e6, "p99": v[int(n * 0.99)] * 1e6}} for name, v in ranked.items()}}

results = {{}}
for batch, n in ((1, {n1}), (64, {n64})):
    body = json.dumps({{"instances": rows[:batch].astype(int).tolist()}})
    request = dict(event, body=body)
    features = np.asarray(json.loads(body)["instances"], dtype=np.float32)
    labels = app.MODEL.labels
    probabilities = app.MODEL.predict(features)
    def handler():
        assert app.lambda_handler(request, context)["statusCode"] == 200
    def run():
        app.MODEL.session.run(["probabilities"], {{"features": features}})
    def io():
        x = np.asarray(orjson.loads(body)["instances"], dtype=np.float32)
        predictions = [labels[i] for i in probabilities.argmax(axis=1).tolist()]
        answer = {{"predictions": predictions, "probabilities": probabilities, "labels": labels, "model": {{}}}}
        orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
    results[batch] = percentiles({{"handler": handler, "run": run, "io": io}}, n)
open({out!r}, "w").write(json.dumps(results))
"""


def measure_warm(function: Path, layer: Path, env: dict[str, str], out: Path, n1: int, n64: int) -> dict[str, dict]:
    script = WARM.format(
        function=str(function), layer=str(layer), context=CONTEXT, event=str(EVENT), digits=str(DIGITS),
        out=str(out), n1=n1, n64=n64,
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


def distribution_size(names: set[str]) -> int:
    total = 0
    for name in names:
        for file in importlib.metadata.distribution(name).files or []:
            path = Path(str(file.locate()))
            if path.is_file() and "__pycache__" not in path.parts:
                total += path.stat().st_size
    return total


def row(label: str, ours: float, base: float, unit: str, goal: str, met: bool) -> str:
    verdict = "yes" if met else "NO"
    return f"| {label} | {ours:,.1f} {unit} | {base:,.1f} {unit} | {ours / base:.2f}x | {goal} | {verdict} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="cold starts per contender (median reported)")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "bench-serving")
    args = parser.parse_args()
    work = args.work.resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"

    print(f"building: layer for this machine ({ARCH}, python {version}, with bytecode) and for Lambda (arm64, 3.12)")
    local_layer = make(
        "build-OnnxRuntimeLayer", "layers/onnxruntime", work / "layer-local",
        ARCH=ARCH, PYTHON_VERSION=version, PYC_PYTHON=sys.executable,
    ) / "python"  # fmt: skip
    lambda_layer = make("build-OnnxRuntimeLayer", "layers/onnxruntime", work / "layer-arm64", ARCH="arm64")
    rows = digits_rows()
    lines = ["| figure | ours | baseline | ratio | goal | met |", "|---|---|---|---|---|---|"]
    for spec in SPECS:
        function = make("build-PredictFunction", "functions/predict", work / spec.name / "function")
        state_path = work / spec.name / "model.pt"
        export_bundle(spec, rows, function / "model", state_path)
        env = LAMBDA_ENV | {"LAMBDA_TASK_ROOT": str(function), "PATH": "/usr/bin:/bin"}
        print(f"{spec.name}: cold starts x{args.repeats}")
        commands = cold_start_commands(function, local_layer, function / "model", state_path, spec)
        cold = measure_cold_starts(commands, env, function, args.repeats)
        print(f"{spec.name}: warm latency")
        warm = measure_warm(function, local_layer, env, work / spec.name / "warm.json", 3000, 1000)
        lines.append(
            row(f"{spec.name} cold start vs naive PyTorch", cold["ours"] * 1e3, cold["naive"] * 1e3, "ms", "<= 0.15x",
                cold["ours"] <= 0.15 * cold["naive"])
        )  # fmt: skip
        lines.append(
            row(f"{spec.name} cold start vs bare onnxruntime", cold["ours"] * 1e3, cold["bare"] * 1e3, "ms", "<= 1.25x",
                cold["ours"] <= 1.25 * cold["bare"])
        )  # fmt: skip
        for batch in (1, 64):
            figures = warm[batch]
            for stat in ("p50", "p99"):
                handler, run = figures["handler"][stat], figures["run"][stat]
                goal_met = handler <= 2.0 * run if batch == 1 else handler - run <= 1.5 * figures["io"][stat]
                goal = "<= 2.0x" if batch == 1 else f"excess <= 1.5x io ({figures['io'][stat]:.0f} us)"
                lines.append(
                    row(f"{spec.name} warm {stat} batch {batch} vs session.run", handler, run, "us", goal, goal_met)
                )
    function = work / SPECS[0].name / "function"
    ours_unzipped = folder_size(lambda_layer) + folder_size(function)
    ours_zipped = zipped_size(lambda_layer) + zipped_size(function)
    torch_deps = distribution_closure("torch")
    torch_unzipped = distribution_size(torch_deps)
    lines.append(
        row("function + layer unzipped vs PyTorch deps", ours_unzipped / 1e6, torch_unzipped / 1e6, "MB", "<= 0.20x",
            ours_unzipped <= 0.20 * torch_unzipped)
    )  # fmt: skip
    lines.append(f"| function + layer zipped | {ours_zipped / 1e6:.1f} MB | | | <= 50 MB | "
                 f"{'yes' if ours_zipped <= 50e6 else 'NO'} |")  # fmt: skip
    print(f"\nPyTorch baseline dependencies: {', '.join(sorted(torch_deps))}")
    print(f"machine: {platform.machine()}, python {platform.python_version()}, onnxruntime {ort.__version__}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
