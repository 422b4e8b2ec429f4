"""benchmarks/cold_start.py's contenders answer the event, and load only what a real handler would."""

import ast
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch

from benchmarks.classifier import LABELS, N_FEATURES, Classifier
from benchmarks.serving_build import Spec, make_bundle
from tests.fixtures.make_tiny_bundle import make_tiny_bundle

ROOT = Path(__file__).resolve().parents[2]
COLD_START = ROOT / "benchmarks" / "cold_start.py"
EVENT = ROOT / "events" / "predict.json"
INSTANCES = np.asarray(json.loads(json.loads(EVENT.read_text())["body"])["instances"], dtype=np.float32)
SITE = Path(np.__file__).resolve().parents[1]  # numpy and onnxruntime, standing in for the layer


def contender(*arguments: str, isolated: bool = True) -> dict[str, list[object]]:
    flags = ["-S"] if isolated else []
    command = [sys.executable, *flags, str(COLD_START), *arguments, "--event", str(EVENT)]
    result = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)
    answer: dict[str, list[object]] = json.loads(result.stdout)
    return answer


def test_cold_start_module_imports_only_json_and_sys_at_its_top() -> None:
    """Anything more would be timed as part of every contender's cold start."""
    tree = ast.parse(COLD_START.read_text())
    imported = {alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
    assert imported == {"json", "sys"}
    assert not [node for node in tree.body if isinstance(node, ast.ImportFrom)]


def test_bare_contender_answers_with_onnxruntime_outputs(tmp_path: Path) -> None:
    make_tiny_bundle(tmp_path / "model", n_features=N_FEATURES)
    answer = contender("bare", "--function", str(tmp_path), "--layer", str(SITE))
    session = ort.InferenceSession(tmp_path / "model" / "model.onnx", providers=["CPUExecutionProvider"])
    (expected,) = session.run(None, {"features": INSTANCES})
    np.testing.assert_allclose(np.asarray(answer["probabilities"]), expected, rtol=1e-6)
    assert answer["predictions"] == expected.argmax(axis=1).tolist()


@pytest.mark.parametrize("hidden", [(8,), (16, 16)])
def test_naive_contender_loads_the_exported_classs_state_dict(tmp_path: Path, hidden: tuple[int, ...]) -> None:
    """The naive PyTorch handler and the bundle's exporter share one Classifier: its state dict round-trips."""
    torch.manual_seed(0)
    model = Classifier(torch.full((N_FEATURES,), 8.0), torch.full((N_FEATURES,), 4.0), hidden).eval()
    torch.save(model.state_dict(), tmp_path / "model.pt")
    arguments = ["--function", str(tmp_path), "--layer", str(SITE), "--state", str(tmp_path / "model.pt")]
    answer = contender("naive", *arguments, "--hidden", ",".join(map(str, hidden)), isolated=False)
    with torch.no_grad():
        expected = model(torch.from_numpy(INSTANCES)).numpy()
    assert np.asarray(answer["probabilities"]).shape == (len(INSTANCES), len(LABELS))
    np.testing.assert_allclose(np.asarray(answer["probabilities"]), expected, rtol=1e-5)


def test_unknown_contender_is_refused_in_one_line() -> None:
    command = [sys.executable, "-S", str(COLD_START), "fastest"]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "cold_start: unknown contender 'fastest'; one of ours, bare, bare+powertools, naive"
    ]


@pytest.mark.parametrize("arguments", [[], ["bare", "--event"]])
def test_missing_arguments_are_refused_with_the_usage_line(arguments: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-S", str(COLD_START), *arguments], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert (
        result.stderr.startswith("usage: cold_start.py ours|bare|bare+powertools|naive")
        and "Traceback" not in result.stderr
    )


def test_benchmark_bundle_passes_the_function_and_matches_its_state_dict(
    tmp_path: Path,
    load_predict_app: Callable[..., ModuleType],
    load_event: Callable[[str], dict[str, Any]],
    lambda_context: Any,
) -> None:
    """serving_build's bundle (training's exporter) is one the function serves, with the naive contender's weights."""
    make_bundle(Spec("bench-test", (8, 8)), tmp_path / "model", tmp_path / "model.pt")
    app = load_predict_app(tmp_path / "model")
    response = app.lambda_handler(load_event("predict.json"), lambda_context)
    assert response["statusCode"] == 200, response["body"]
    model = Classifier(torch.zeros(N_FEATURES), torch.ones(N_FEATURES), (8, 8))
    model.load_state_dict(torch.load(tmp_path / "model.pt"))
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(INSTANCES)).numpy()
    np.testing.assert_allclose(np.asarray(json.loads(response["body"])["probabilities"]), expected, atol=1e-5)


def test_rows_benchmark_reads_the_csv_as_the_api_takes_rows() -> None:
    from benchmarks.warm_rows import card_rows

    features = [{"name": "island", "kind": "categorical"}, {"name": "bill_length_mm", "kind": "numeric"},
                {"name": "sex", "kind": "categorical"}]  # fmt: skip

    rows = card_rows(str(ROOT / "examples" / "data" / "penguins.csv"), features)

    assert rows[0] == ["Torgersen", 39.1, "male"]
    assert len(rows) == 342  # two rows lack bill_length_mm
    assert ["Torgersen", 34.1, None] in rows  # sex missing: null, as a client sends it
