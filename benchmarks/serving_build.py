"""What serving.py measures: the layer (for this machine and for Lambda arm64) and one function per model.

Each function is the SAM Makefile's build with a bundle promoted into it. The bundle is made by the
training code's exporter (ONNX, parity gate, model card) from an untrained, seeded
benchmarks.classifier.Classifier, whose state dict the naive PyTorch contender loads.
"""

import hashlib
import json
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks.classifier import Classifier
from training.config import TrainConfig
from training.data.splits import load_splits
from training.export.export import export_bundle

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "data" / "digits.csv"
EVENT = ROOT / "events" / "predict.json"
ARCH = {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine()]
PYTHON_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
Builds = dict[str, tuple[Path, subprocess.Popen[bytes] | None]]


@dataclass(frozen=True)
class Spec:
    name: str
    hidden: tuple[int, ...]


SPECS = [Spec("digits-mlp", (128, 128)), Spec("wide-mlp", (1024, 1024, 1024))]


def make_bundle(spec: Spec, bundle: Path, state_path: Path) -> None:
    """Export the (untrained, seeded) model as a bundle through training's exporter, and save its state dict."""
    assert len(set(spec.hidden)) == 1, "TrainConfig's mlp has layers of one width"
    config = TrainConfig(
        data=str(DIGITS), name=spec.name, out=str(bundle), hidden_size=spec.hidden[0], depth=len(spec.hidden),
        dropout=0.0, epochs=1,
    )  # fmt: skip
    splits = load_splits(config)
    torch.manual_seed(0)
    model = Classifier(torch.from_numpy(splits.mean), torch.from_numpy(splits.std), spec.hidden).eval()
    torch.save(model.state_dict(), state_path)
    shutil.rmtree(bundle, ignore_errors=True)  # drop whatever bundle the source checkout had promoted
    export_bundle(model, splits, config, {"trained": False}, bundle)


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


def start_layer_builds(source: Path, cache: Path) -> Builds:
    """Build the layer for this machine (to run) and for Lambda arm64 (to size) side by side.

    pip spends most of a build waiting on downloads, so the two overlap well; a layer is reused while
    its requirements, Makefile and settings are unchanged.
    """
    folder = source / "layers" / "onnxruntime"
    recipe = (folder / "requirements.txt").read_bytes() + (folder / "Makefile").read_bytes()
    builds: Builds = {}
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


def finish_layer_builds(builds: Builds) -> dict[str, Path]:
    for name, (artifacts, process) in builds.items():
        if process is not None:
            _, stderr = process.communicate()
            if process.returncode != 0:
                raise RuntimeError(f"layer build {name} failed: {stderr.decode()[-2000:]}")
            (artifacts / "built").touch()
    return {name: artifacts / "python" for name, (artifacts, _) in builds.items()}


def build(source: Path, work: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """The layers (local, arm64) and one function per model, each with its bundle promoted into it."""
    builds = start_layer_builds(source, work)
    functions: dict[str, Path] = {}
    for spec in SPECS:
        artifacts = work / spec.name / "function"
        build = make_command(source, "functions/predict", "build-PredictFunction", artifacts,
                             PYC_PYTHON=sys.executable, PYTHON_VERSION=PYTHON_VERSION)  # fmt: skip
        subprocess.run(build, check=True, capture_output=True)
        make_bundle(spec, artifacts / "model", work / spec.name / "model.pt")
        functions[spec.name] = artifacts
    return finish_layer_builds(builds), functions
