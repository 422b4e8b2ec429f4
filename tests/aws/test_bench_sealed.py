"""benchmarks/serving_sealed.py: its sealed contender answers through the function, its key in moto's KMS."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from benchmarks.serving_sealed import CONTENDER, sealed_function, sealed_row
from tests.fixtures.make_tiny_bundle import make_tiny_bundle
from tests.projects import copy_function

ROOT = Path(__file__).resolve().parents[2]
SITE = Path(np.__file__).resolve().parents[1]  # numpy, onnxruntime, boto3 and cryptography: the layer and runtime


def test_sealed_contender_serves_the_event_with_its_key_in_moto(tmp_path: Path) -> None:
    function = copy_function(tmp_path)
    make_tiny_bundle(function / "model", n_features=64)
    command = [sys.executable, "-S", str(ROOT / "benchmarks" / "cold_start.py"), "ours", "--layer", str(SITE)]

    with sealed_function(function, tmp_path / "work") as (sealed, aws):
        env = {"PATH": os.environ["PATH"], "MODEL_DIR": "model", "POWERTOOLS_TRACE_DISABLED": "true", **aws}
        result = subprocess.run(
            [*command, "--function", str(sealed), "--event", str(ROOT / "events" / "predict.json")],
            env=env | {"POWERTOOLS_METRICS_NAMESPACE": "Bench", "LAMBDA_TASK_ROOT": str(sealed)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    assert result.returncode == 0, result.stderr[-2000:]  # cold_start.py asserts status 200
    assert sorted(path.name for path in (sealed / "model").iterdir()) == [
        "model.json",
        "model.key.json",
        "model.onnx.enc",
    ]
    assert json.loads((sealed / "model" / "model.key.json").read_text())["key_id"].startswith("arn:aws:kms:")


def test_sealed_row_sets_the_sealed_cold_start_beside_the_plain_one() -> None:
    cold = {("digits", CONTENDER): [0.30, 0.32, 0.31], ("digits", "ours"): [0.20, 0.22, 0.21]}

    line = sealed_row(cold, "digits")

    assert line == (
        f"| digits cold start, {CONTENDER}, vs plain model | 310.0 ms | 210.0 ms | 1.48x | +100 ms | info |"
    )
