"""Bundle export with real torch modules: ONNX file, parity gate, int8 copy, model card and atomic publishing."""

import hashlib
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx.external_data_helper import uses_external_data
from torch import nn

from training.config import TrainConfig
from training.data.splits import Split, Splits
from training.export.export import ExportError, export_bundle, inline_external_data
from training.fit.metrics import classification_metrics, regression_metrics

CONTRACT_KEYS = {"format", "name", "version", "task", "input", "outputs", "metrics", "sample", "training", "export"}
SUMMARY = {"best_epoch": 4, "epochs_run": 6, "stopped_early": True}
N_FEATURES = 5


def make_splits(task: str, seed: int = 0) -> Splits:
    """Three separable classes (or a linear target) on raw scales far from 0/1, split 120/40/40."""
    rng = np.random.default_rng(seed)
    rows = 200
    y_class = rng.integers(0, 3, rows)
    centres = rng.normal(0.0, 2.0, (3, N_FEATURES))
    z = (
        centres[y_class] + rng.normal(0.0, 0.7, (rows, N_FEATURES))
        if task == "classification"
        else rng.normal(size=(rows, N_FEATURES))
    )
    x = (z * np.array([1.0, 10.0, 0.1, 50.0, 3.0]) + np.array([0.0, 100.0, -5.0, 1000.0, 7.0])).astype(np.float32)
    y = (
        y_class
        if task == "classification"
        else (z @ np.array([3.0, -2.0, 1.0, 0.5, 0.0]) * 20 + 150).astype(np.float32)
    )
    parts = [slice(0, 120), slice(120, 160), slice(160, 200)]
    train, val, test = (Split(x=x[part], y=y[part]) for part in parts)
    return Splits(
        train=train,
        val=val,
        test=test,
        task=task,
        feature_names=[f"f{i}" for i in range(N_FEATURES)],
        labels=["setosa", "versicolor", "virginica"] if task == "classification" else [],
        mean=train.x.mean(axis=0),
        std=train.x.std(axis=0),
        target_mean=float(train.y.mean()) if task == "regression" else 0.0,
        target_std=float(train.y.std()) if task == "regression" else 1.0,
        data_sha256="ab" * 32,
        cleaning={"rows_read": 203, "rows_dropped_missing_target": 3, "values_imputed": 2, "columns_excluded": 1},
    )


class StandardisedLinear(nn.Module):
    """Standardisation buffers, one linear layer, then softmax or target units: a real serving module."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, splits: Splits, weight: np.ndarray, bias: np.ndarray) -> None:
        super().__init__()
        self.task = splits.task
        self.register_buffer("mean", torch.from_numpy(splits.mean))
        self.register_buffer("std", torch.from_numpy(splits.std))
        self.linear = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.linear.weight.copy_(torch.from_numpy(weight.astype(np.float32)))
            self.linear.bias.copy_(torch.from_numpy(bias.astype(np.float32)))
        self.target_mean, self.target_std = splits.target_mean, splits.target_std

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        scores: torch.Tensor = self.linear((features - self.mean) / self.std)
        if self.task == "classification":
            return scores.softmax(dim=-1)
        return scores[:, 0] * self.target_std + self.target_mean


def fitted_module(splits: Splits) -> StandardisedLinear:
    """Nearest-centroid scores (classification) or least squares (regression) on the training split."""
    z = (splits.train.x - splits.mean) / splits.std
    if splits.task == "classification":
        centroids = np.stack([z[splits.train.y == k].mean(axis=0) for k in range(splits.n_outputs)])
        return StandardisedLinear(splits, centroids, -0.5 * (centroids**2).sum(axis=1))
    target = (splits.train.y - splits.target_mean) / splits.target_std
    coef, *_ = np.linalg.lstsq(np.hstack([z, np.ones((len(z), 1))]), target, rcond=None)
    return StandardisedLinear(splits, coef[None, :-1], coef[-1:])


class DivergesWhenExported(StandardisedLinear):
    """A code path that only runs under export, so the ONNX graph computes something PyTorch does not."""

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        probabilities = super().forward(features)
        return probabilities.flip(-1) if torch.compiler.is_exporting() else probabilities


def config(**settings: Any) -> TrainConfig:
    return TrainConfig(data="data/iris.csv", target="species", exclude=("email",), **settings)


def read_card(out_dir: Path) -> dict[str, Any]:
    return dict(json.loads((out_dir / "model.json").read_text()))


@pytest.fixture(scope="module")
def classification_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], Splits, nn.Module]:
    splits = make_splits("classification")
    module = fitted_module(splits)
    out_dir = tmp_path_factory.mktemp("export") / "bundle"
    card = export_bundle(module, splits, config(), SUMMARY, out_dir)
    return out_dir, card, splits, module


def session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_export_bundle_writes_one_onnx_file_and_its_card(classification_bundle: Any) -> None:
    out_dir, card, _, _ = classification_bundle

    assert sorted(file.name for file in out_dir.iterdir()) == ["model.json", "model.onnx"]
    assert [entry.name for entry in out_dir.parent.iterdir()] == ["bundle"]  # no staging folder left behind
    model = onnx.load(out_dir / "model.onnx", load_external_data=False)
    assert not any(uses_external_data(tensor) for tensor in model.graph.initializer)
    onnx.checker.check_model(model, full_check=True)
    assert read_card(out_dir) == card


def test_export_bundle_graph_has_named_input_output_and_dynamic_batch(classification_bundle: Any) -> None:
    out_dir, _, splits, _ = classification_bundle
    model = session(out_dir / "model.onnx")

    (model_input,) = model.get_inputs()
    (model_output,) = model.get_outputs()
    assert model_input.name == "features" and model_input.type == "tensor(float)"
    assert isinstance(model_input.shape[0], str) and model_input.shape[1] == N_FEATURES
    assert model_output.name == "probabilities"
    for rows in (1, 7, 40):
        (probabilities,) = model.run(None, {"features": splits.test.x[:rows]})
        assert probabilities.shape == (rows, 3)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)


def test_export_bundle_card_holds_the_contract_keys_and_values(classification_bundle: Any) -> None:
    out_dir, card, splits, _ = classification_bundle
    digest = hashlib.sha256((out_dir / "model.onnx").read_bytes()).hexdigest()

    assert CONTRACT_KEYS | {"labels", "sha256"} <= card.keys()
    assert card["format"] == "serverless-ml.bundle/1"
    assert card["name"] == "iris-mlp"
    assert card["sha256"] == digest
    assert re.fullmatch(rf"\d{{8}}T\d{{6}}Z-{digest[:7]}", card["version"])
    assert card["task"] == "classification"
    assert card["input"] == {
        "name": "features",
        "shape": [None, N_FEATURES],
        "dtype": "float32",
        "feature_names": ["f0", "f1", "f2", "f3", "f4"],
    }
    assert card["outputs"] == ["probabilities"]
    assert card["labels"] == ["setosa", "versicolor", "virginica"]
    training = card["training"]
    assert training["config"] == config().to_dict()
    assert training["data_sha256"] == "ab" * 32
    assert training["rows"] == {"train": 120, "val": 40, "test": 40}
    assert training["cleaning"] == splits.cleaning
    assert training["privacy"] == {"excluded": ["email"], "masked": [], "allowed": []}
    assert {key: training[key] for key in SUMMARY} == SUMMARY


def test_export_bundle_card_records_export_facts(classification_bundle: Any) -> None:
    _, card, _, _ = classification_bundle
    export = card["export"]

    assert export["opset"] == 18
    assert (export["torch"], export["onnx"], export["onnxruntime"]) == (
        torch.__version__,
        onnx.__version__,
        ort.__version__,
    )
    assert 0.0 <= export["parity_max_abs_error"] <= export["parity_tolerance"] == 1e-5
    assert set(export["latency_ms"]) == {"p50_batch_1", "p50_batch_64"}
    assert all(value > 0 for value in export["latency_ms"].values())


def test_export_bundle_sample_outputs_are_what_onnxruntime_returns(classification_bundle: Any) -> None:
    out_dir, card, splits, _ = classification_bundle
    instances = np.asarray(card["sample"]["instances"], dtype=np.float32)

    (outputs,) = session(out_dir / "model.onnx").run(None, {"features": instances})

    data = np.concatenate([splits.train.x, splits.val.x, splits.test.x])
    assert instances.shape == (3, N_FEATURES)
    assert not any((data == instance).all(axis=1).any() for instance in instances)  # synthetic, not records
    # Raw units, within what the training split spans, exactly as a client would send them.
    assert ((instances >= splits.train.x.min(axis=0)) & (instances <= splits.train.x.max(axis=0))).all()
    np.testing.assert_allclose(outputs, np.asarray(card["sample"]["outputs"]), rtol=0, atol=1e-6)


def test_export_bundle_test_metrics_come_from_the_onnx_model(classification_bundle: Any) -> None:
    out_dir, card, splits, module = classification_bundle

    (probabilities,) = session(out_dir / "model.onnx").run(None, {"features": splits.test.x})
    with torch.no_grad():
        torch_classes = module(torch.from_numpy(splits.test.x)).argmax(dim=1).numpy()

    assert card["metrics"]["test"] == classification_metrics(splits.test.y, probabilities.argmax(axis=1), splits.labels)
    np.testing.assert_array_equal(probabilities.argmax(axis=1), torch_classes)
    assert card["metrics"]["test"]["accuracy"] >= 0.9  # separable classes: the model is real, not random


def test_export_bundle_regression_outputs_predictions_in_target_units(tmp_path: Path) -> None:
    splits = make_splits("regression")
    module = fitted_module(splits)

    card = export_bundle(module, splits, config(name="dose"), SUMMARY, tmp_path / "bundle")
    (predictions,) = session(tmp_path / "bundle" / "model.onnx").run(None, {"features": splits.test.x})

    assert card["name"] == "dose" and card["task"] == "regression"
    # a float32 prediction near 150 has a rounding step of 1.5e-5, so the gate scales by |value| beyond 1
    assert card["export"]["parity_max_scaled_error"] <= 1e-5 < 200 * 1e-5
    assert card["outputs"] == ["predictions"] and "labels" not in card
    assert predictions.shape == (40,)
    assert card["metrics"]["test"] == regression_metrics(splits.test.y, predictions)
    assert card["metrics"]["test"]["r2"] > 0.95
    with torch.no_grad():
        np.testing.assert_allclose(predictions, module(torch.from_numpy(splits.test.x)).numpy(), atol=1e-3)


@pytest.mark.parametrize("old_bundle", [False, True], ids=["fresh", "existing"])
def test_export_bundle_parity_failure_writes_nothing(tmp_path: Path, old_bundle: bool) -> None:
    splits = make_splits("classification")
    module = fitted_module(splits)
    diverging = DivergesWhenExported(splits, module.linear.weight.detach().numpy(), module.linear.bias.detach().numpy())
    out_dir = tmp_path / "bundle"
    if old_bundle:
        out_dir.mkdir()
        (out_dir / "model.onnx").write_bytes(b"old model")
        (out_dir / "model.json").write_text('{"version": "old"}')

    with pytest.raises(
        ExportError, match=r"parity check failed: onnxruntime differs from PyTorch by up to .* at batch 1"
    ):
        export_bundle(diverging, splits, config(), SUMMARY, out_dir)

    assert [entry.name for entry in tmp_path.iterdir()] == (["bundle"] if old_bundle else [])
    if old_bundle:
        assert (out_dir / "model.onnx").read_bytes() == b"old model"
        assert (out_dir / "model.json").read_text() == '{"version": "old"}'


def test_export_bundle_replaces_an_old_bundle_and_keeps_other_files(tmp_path: Path) -> None:
    out_dir = tmp_path / "bundle"
    out_dir.mkdir()
    for name in ("model.onnx", "model.int8.onnx", "model.json", "curves.png"):
        (out_dir / name).write_bytes(b"old")
    splits = make_splits("classification")

    card = export_bundle(fitted_module(splits), splits, config(), SUMMARY, out_dir)

    assert sorted(file.name for file in out_dir.iterdir()) == ["curves.png", "model.json", "model.onnx"]
    assert (out_dir / "curves.png").read_bytes() == b"old"
    assert read_card(out_dir)["sha256"] == hashlib.sha256((out_dir / "model.onnx").read_bytes()).hexdigest()
    assert read_card(out_dir) == card
    assert [entry.name for entry in tmp_path.iterdir()] == ["bundle"]


def test_export_bundle_int8_copy_is_kept_with_its_own_figures(tmp_path: Path) -> None:
    splits = make_splits("classification")

    module = fitted_module(splits)
    card = export_bundle(module, splits, config(quantize="int8"), SUMMARY, tmp_path / "bundle")
    int8_path = tmp_path / "bundle" / "model.int8.onnx"
    (probabilities,) = session(int8_path).run(None, {"features": splits.test.x})

    int8 = card["int8"]
    assert int8["kept"] is True and int8["file"] == "model.int8.onnx"
    assert int8["sha256"] == hashlib.sha256(int8_path.read_bytes()).hexdigest()
    assert sorted(file.name for file in (tmp_path / "bundle").iterdir()) == [
        "model.int8.onnx",
        "model.json",
        "model.onnx",
    ]
    assert int8["metrics"]["test"] == classification_metrics(splits.test.y, probabilities.argmax(axis=1), splits.labels)
    assert card["metrics"]["test"]["accuracy"] - int8["metrics"]["test"]["accuracy"] <= 0.01
    one_by_one = np.concatenate([session(int8_path).run(None, {"features": row[None]})[0] for row in splits.test.x])
    with torch.no_grad():
        expected = module(torch.from_numpy(splits.test.x)).numpy()
    worst = max(np.abs(one_by_one - expected).max(), np.abs(probabilities - expected).max())
    assert int8["parity_max_abs_error"] == pytest.approx(float(worst), abs=1e-6)
    assert int8["parity_max_abs_error"] > card["export"]["parity_max_abs_error"]  # int8 is approximate
    assert set(int8["latency_ms"]) == {"p50_batch_1", "p50_batch_64"}
    assert any(node.op_type == "MatMulInteger" for node in onnx.load(int8_path).graph.node)


def test_export_bundle_int8_copy_is_dropped_when_accuracy_falls(tmp_path: Path) -> None:
    splits = with_constant_first_feature(make_splits("classification"))
    module = fitted_module(splits)
    # Small useful weights plus one huge weight on the constant feature, which is 0 once standardised:
    # harmless in float32, but int8's one scale per tensor (max |w| / 127) rounds every useful weight to 0.
    weight = module.linear.weight.detach().numpy() * 0.01
    weight[0, 0] = 100.0
    broken = StandardisedLinear(splits, weight, module.linear.bias.detach().numpy() * 0.01)

    card = export_bundle(broken, splits, config(quantize="int8"), SUMMARY, tmp_path / "bundle")

    assert card["metrics"]["test"]["accuracy"] >= 0.9
    assert card["int8"]["kept"] is False
    assert card["int8"]["metrics"]["test"]["accuracy"] < card["metrics"]["test"]["accuracy"] - 0.01
    assert card["int8"]["reason"].startswith("test accuracy dropped from")
    assert "file" not in card["int8"]
    assert sorted(file.name for file in (tmp_path / "bundle").iterdir()) == ["model.json", "model.onnx"]


def with_constant_first_feature(splits: Splits) -> Splits:
    def constant(split: Split) -> Split:
        x = split.x.copy()
        x[:, 0] = 7.0
        return Split(x=x, y=split.y)

    mean, std = splits.mean.copy(), splits.std.copy()
    mean[0], std[0] = 7.0, 1.0
    return replace(
        splits, train=constant(splits.train), val=constant(splits.val), test=constant(splits.test), mean=mean, std=std
    )


def test_inline_external_data_folds_weights_back_into_one_file(tmp_path: Path) -> None:
    weight = onnx.numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(3, 4), "weight")
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("MatMul", ["features", "weight"], ["scores"])],
        "external",
        [onnx.helper.make_tensor_value_info("features", onnx.TensorProto.FLOAT, ["batch", 3])],
        [onnx.helper.make_tensor_value_info("scores", onnx.TensorProto.FLOAT, ["batch", 4])],
        [weight],
    )
    path = tmp_path / "model.onnx"
    onnx.save(
        onnx.helper.make_model(graph), path, save_as_external_data=True, location="model.onnx.data", size_threshold=0
    )
    assert (tmp_path / "model.onnx.data").exists()

    inline_external_data(path)

    assert [file.name for file in tmp_path.iterdir()] == ["model.onnx"]
    (scores,) = session(path).run(None, {"features": np.ones((2, 3), dtype=np.float32)})
    np.testing.assert_array_equal(
        scores, np.ones((2, 3), dtype=np.float32) @ np.arange(12, dtype=np.float32).reshape(3, 4)
    )
