"""The model registry, the Pipeline's standardisation, the serving wrapper and ONNX export of every architecture."""

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from training.config import ConfigError, TrainConfig
from training.data.splits import Split, Splits
from training.models import MODELS, Pipeline, build_model, serving_model


def make_splits(task: str, n_features: int, rows: int = 40, seed: int = 0) -> Splits:
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(rows, n_features)) * 4 + 10).astype(np.float32)
    if task == "classification":
        split = Split(x, rng.integers(0, 3, size=rows).astype(np.int64))
        labels, target_mean, target_std = ["a", "b", "c"], 0.0, 1.0
    else:
        split = Split(x, rng.normal(150, 70, size=rows).astype(np.float32))
        labels, target_mean, target_std = [], 150.0, 70.0
    std = x.std(axis=0).astype(np.float32)
    names = [f"f{index}" for index in range(n_features)]
    return Splits(split, split, split, task, names, labels, x.mean(axis=0), std, target_mean, target_std, "0" * 64, {})


def export(module: torch.nn.Module, n_features: int, path: Path) -> ort.InferenceSession:
    torch.onnx.export(
        module,
        (torch.zeros(7, n_features),),
        str(path),
        dynamo=True,
        input_names=["features"],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        opset_version=18,
        verbose=False,
    )
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


EXPORT_CASES = {
    "mlp classification": (TrainConfig(model="mlp"), "classification", 64),
    "mlp regression": (TrainConfig(model="mlp"), "regression", 10),
    "cnn 1x8x8": (TrainConfig(model="cnn", input_shape=(1, 8, 8), channels=8), "classification", 64),
    "transformer": (TrainConfig(model="transformer", d_model=16, heads=2), "classification", 10),
}


@pytest.mark.parametrize("case", list(EXPORT_CASES))
def test_models_export_with_dynamic_batch_matches_torch(case: str, tmp_path: Path) -> None:
    config, task, n_features = EXPORT_CASES[case]
    splits = make_splits(task, n_features)
    serving = serving_model(build_model(config, splits))

    session = export(serving, n_features, tmp_path / "model.onnx")

    for batch in (1, 7):
        rows = splits.test.x[:batch]
        (onnx_outputs,) = session.run(None, {"features": rows})
        with torch.no_grad():
            torch_outputs = serving(torch.from_numpy(rows)).numpy()
        assert onnx_outputs.shape == torch_outputs.shape == ((batch, 3) if task == "classification" else (batch,))
        # Absolute up to 1, relative beyond: float32 spacing alone is 1.5e-5 at a regression output of 150.
        scaled_error = np.abs(onnx_outputs - torch_outputs) / np.maximum(1.0, np.abs(torch_outputs))
        assert scaled_error.max() <= 1e-5


@pytest.mark.parametrize(("shape", "n_features"), [((1, 8, 8), 64), ((1, 28, 28), 784), ((3, 4, 5), 60)])
def test_cnn_reshapes_flat_rows_to_the_input_shape(shape: tuple[int, ...], n_features: int) -> None:
    config = TrainConfig(model="cnn", input_shape=shape, channels=4)
    model = build_model(config, make_splits("classification", n_features))

    logits = model(torch.zeros(5, n_features))

    assert logits.shape == (5, 3)


def test_cnn_refuses_an_input_shape_that_does_not_match_the_features() -> None:
    config = TrainConfig(model="cnn", input_shape=(1, 8, 8))

    with pytest.raises(ConfigError, match="--input-shape 1,8,8 holds 64 values but the data has 60 features"):
        build_model(config, make_splits("classification", 60))


def test_pipeline_standardises_raw_features_before_the_net() -> None:
    splits = make_splits("classification", 6)
    model = build_model(TrainConfig(dropout=0.0), splits).eval()
    raw = torch.from_numpy(splits.train.x[:4])

    standardised = (raw - torch.from_numpy(splits.mean)) / torch.from_numpy(splits.std)

    torch.testing.assert_close(model(raw), model.net(standardised), rtol=0, atol=0)


def test_serving_classification_gives_probabilities() -> None:
    splits = make_splits("classification", 6)
    model = build_model(TrainConfig(), splits)

    probabilities = serving_model(model)(torch.from_numpy(splits.test.x))

    torch.testing.assert_close(probabilities.sum(dim=1), torch.ones(len(splits.test.x)))
    torch.testing.assert_close(probabilities, torch.softmax(model(torch.from_numpy(splits.test.x)), dim=1))


def test_serving_regression_returns_one_prediction_per_row_in_target_units() -> None:
    splits = make_splits("regression", 6)
    model = build_model(TrainConfig(), splits)
    rows = torch.from_numpy(splits.test.x)

    predictions = serving_model(model)(rows)

    assert predictions.shape == (len(rows),)
    torch.testing.assert_close(predictions, model(rows) * 70.0 + 150.0)


def test_serving_model_turns_dropout_off() -> None:
    splits = make_splits("classification", 6)
    serving = serving_model(build_model(TrainConfig(dropout=0.5), splits))
    rows = torch.from_numpy(splits.test.x)

    torch.testing.assert_close(serving(rows), serving(rows), rtol=0, atol=0)


@pytest.mark.parametrize("name", list(MODELS))
def test_build_model_same_seed_gives_same_weights_and_leaves_global_rng_alone(name: str) -> None:
    splits = make_splits("classification", 64)
    config = TrainConfig(model=name, input_shape=(1, 8, 8), channels=4, d_model=8, heads=2)
    torch.manual_seed(123)
    expected_draw = torch.rand(3)
    torch.manual_seed(123)

    first, second = build_model(config, splits), build_model(config, splits)
    other_seed = build_model(
        TrainConfig(model=name, input_shape=(1, 8, 8), channels=4, d_model=8, heads=2, seed=1), splits
    )

    assert isinstance(first, Pipeline)
    assert all(
        torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True)
    )
    assert not all(
        torch.equal(a, b) for a, b in zip(first.state_dict().values(), other_seed.state_dict().values(), strict=True)
    )
    assert torch.equal(torch.rand(3), expected_draw)
