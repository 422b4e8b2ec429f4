"""Who owns the bundle contract: the function's loader decides, promote asks it in a clean process, and
the training job's card writer keeps cards within the loader's bounds."""

import importlib.util
import json
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper

import sml.bundle
from sml.cli import main
from sml.local.worker import MAX_PAYLOAD_BYTES
from tests.conftest import FUNCTION_DIR
from tests.projects import copy_function
from training.export import card as card_writer
from training.export import export as exporter
from training.export.export import ExportError, inline_external_data


def function_module(name: str) -> ModuleType:
    """A module of functions/predict, loaded from its file without putting that folder on sys.path."""
    spec = importlib.util.spec_from_file_location(f"function_{name}", FUNCTION_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


contract = function_module("contract")


def test_twins_across_the_import_border_are_equal():
    assert (sml.bundle.MODEL_FILE, sml.bundle.CARD_FILE, sml.bundle.INT8_FILE) == (
        contract.MODEL_FILE,
        contract.CARD_FILE,
        contract.INT8_FILE,
    )
    assert contract.LAMBDA_RESPONSE_BYTES == MAX_PAYLOAD_BYTES
    assert card_writer.FORMAT == contract.BUNDLE_FORMAT
    assert card_writer.OUTPUT_BY_TASK == contract.OUTPUT_BY_TASK
    assert (exporter.ONNX_FILE, exporter.CARD_FILE, exporter.INT8_FILE) == (
        contract.MODEL_FILE,
        contract.CARD_FILE,
        contract.INT8_FILE,
    )
    # A card the job writes is one GET /model can return: escaping it as a JSON string at most triples it.
    assert 3 * (card_writer.MAX_CARD_BYTES + contract.RESPONSE_ENVELOPE_BYTES) <= contract.LAMBDA_RESPONSE_BYTES


def probe_function(root: Path, loader: str) -> Path:
    """A function folder whose model.py is `loader`, for what promote does with whatever it finds there."""
    function_dir = copy_function(root)
    (function_dir / "model.py").write_text(loader)
    return function_dir


def test_promote_runs_the_loader_from_the_function_folder_without_sml_or_training(tmp_path, tiny_bundle, capsys):
    report = (
        "import os, sys\n"
        "class BundleError(Exception): pass\n"
        "def load(path):\n"
        "    seen = sorted(m for m in sys.modules if m.split('.')[0] in ('sml', 'training', 'tests'))\n"
        "    raise BundleError(f'imported={seen} cwd={os.getcwd()} path0={sys.path[0]} bundle={path.name}')\n"
    )
    function_dir = probe_function(tmp_path, report)

    assert main(["promote", str(tiny_bundle), "--function-dir", str(function_dir)]) == 2

    err = capsys.readouterr().err
    assert f"imported=[] cwd={function_dir} path0={function_dir.resolve()} bundle=.model-staging-" in err
    assert not (function_dir / "model").exists()
    assert [path.name for path in function_dir.iterdir() if path.name.startswith(".")] == []


@pytest.mark.parametrize(
    ("loader", "message"),
    [
        ("import os\ndef load(path):\n    os.kill(os.getpid(), 9)\n", "failed on the bundle: exit status -9"),
        (
            "class BundleError(Exception): ...\ndef load(path):\n    raise RuntimeError('a loader bug')\n",
            "failed on the bundle: RuntimeError: a loader bug",
        ),
        ("x = (\n", "failed on the bundle: SyntaxError"),
    ],
    ids=["killed", "raises", "broken code"],
)
def test_promote_refuses_when_the_loader_crashes_and_keeps_the_served_bundle(
    tmp_path, tiny_bundle, tiny_regression_bundle, capsys, loader, message
):
    function_dir = copy_function(tmp_path)
    assert main(["promote", str(tiny_regression_bundle), "--function-dir", str(function_dir)]) == 0
    served = (function_dir / "model" / "model.json").read_bytes()
    (function_dir / "model.py").write_text(loader)

    code = main(["promote", str(tiny_bundle), "--function-dir", str(function_dir)])

    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert (function_dir / "model" / "model.json").read_bytes() == served
    assert [path.name for path in function_dir.iterdir() if path.name.startswith(".")] == []


def test_promote_outside_a_function_folder_is_one_line(tmp_path, tiny_bundle, capsys):
    assert main(["promote", str(tiny_bundle), "--function-dir", str(tmp_path)]) == 2
    assert "has no model.py: pass the prediction function's folder" in capsys.readouterr().err


def big_confusion_card(bundle: Path, classes: int) -> dict[str, Any]:
    card: dict[str, Any] = json.loads((bundle / "model.json").read_text())
    card["metrics"]["test"]["confusion_matrix"] = np.zeros((classes, classes), dtype=int).tolist()
    return card


def test_write_card_trims_a_card_serving_could_not_return_and_the_function_serves_it(
    tmp_path, tiny_bundle, load_predict_app, load_event, lambda_context
):
    bundle = Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))
    card = big_confusion_card(bundle, 600)  # ~3 MB as written: a many-class model's confusion matrix

    card_writer.write_card(bundle / "model.json", card)

    written = json.loads((bundle / "model.json").read_text())
    assert (bundle / "model.json").stat().st_size <= card_writer.MAX_CARD_BYTES
    assert written["export"]["card_trimmed"] == ["metrics.test.confusion_matrix"]
    assert "confusion_matrix" not in written["metrics"]["test"] and "per_class" not in written["metrics"]["test"]
    assert written == card
    response = load_predict_app(bundle).lambda_handler(load_event("model.json"), lambda_context)
    public = {key: value for key, value in written.items() if key != "training"}  # GET /model: the public view
    assert response["statusCode"] == 200 and json.loads(response["body"]) == public


def test_write_card_refuses_a_card_too_large_even_trimmed(tmp_path, tiny_bundle):
    bundle = Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))
    card = json.loads((bundle / "model.json").read_text())
    card["labels"] = [f"{index}-{'x' * 400_000}" for index in range(3)]

    with pytest.raises(card_writer.CardTooLarge, match=r"even trimmed \(sample\).*at most 1048576"):
        card_writer.write_card(bundle / "model.json", card)
    assert json.loads((bundle / "model.json").read_text())["labels"] != card["labels"]  # nothing written


@pytest.mark.parametrize("location", ["../weights.bin", "/tmp/weights.bin"])
def test_export_refuses_a_model_that_still_refers_to_external_data(tmp_path, tiny_bundle, location):
    model = onnx.load(tiny_bundle / "model.onnx")
    weight = next(tensor for tensor in model.graph.initializer if tensor.name == "weight")
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight), "weight"))
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    weight.external_data.add(key="location", value=location)
    (tmp_path / "staging").mkdir()
    onnx.save(model, tmp_path / "staging" / "model.onnx")

    with pytest.raises(ExportError, match="still refers to external data"):
        inline_external_data(tmp_path / "staging" / "model.onnx")
