"""The card's sample is synthetic: drawn from the training split's statistics, never a row of the data."""

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
from onnx import TensorProto, helper

from tests.conftest import import_pretraffic_hook, read_event
from training.__main__ import main
from training.export.sample import (
    Categorical,
    Feature,
    Numeric,
    draw_rows,
    numeric_features,
    spread,
    synthetic_sample,
    unseen,
)

REPO = Path(__file__).resolve().parents[2]
BUNDLED = {"digits": ("label", 10), "diabetes": ("progression", 0)}


def linear_session(tmp_path: Path, n_features: int, n_outputs: int) -> ort.InferenceSession:
    """features @ W: a real ONNX model whose outputs differ row by row (softmax when n_outputs > 1)."""
    weights = np.random.default_rng(1).normal(size=(n_features, n_outputs)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["features", "W"], ["z"])]
    nodes.append(helper.make_node("Softmax", ["z"], ["out"], axis=1))
    graph = helper.make_graph(
        nodes,
        "linear",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, n_features])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [None, n_outputs])],
        [helper.make_tensor("W", TensorProto.FLOAT, weights.shape, weights.flatten())],
    )
    path = tmp_path / "linear.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_numeric_draws_stay_within_the_observed_range_and_whole_columns_stay_whole() -> None:
    column = np.array([2.0, 3.0, 3.0, 5.0, 9.0, 16.0])

    drawn = Numeric.of(column).draw(np.random.default_rng(0), 1000)

    assert drawn.min() >= 2.0 and drawn.max() <= 16.0
    assert np.all(np.mod(drawn, 1) == 0)
    assert len(np.unique(drawn)) > 5  # values between the observed ones too: the distribution, not the records


def test_statistics_of_a_large_training_split_come_from_a_seeded_subset_within_its_range() -> None:
    train_x = np.random.default_rng(0).normal(size=(250_000, 4)).astype(np.float32)

    first, again = (numeric_features(train_x, np.random.default_rng(7)) for _ in range(2))

    assert len(first) == 4
    for feature, repeated, column in zip(first, again, train_x.T, strict=True):
        np.testing.assert_array_equal(feature.quantiles, repeated.quantiles)  # the same seed, the same sample
        assert column.min() <= feature.quantiles[0] < feature.quantiles[-1] <= column.max()
        assert abs(feature.quantiles[10]) < 0.02  # the median of a standard normal, from 100,000 of its rows


def test_categorical_draws_only_from_the_vocabulary() -> None:
    features: list[Feature] = [Numeric.of(np.array([0.5, 1.5])), Categorical(("red", "green"))]

    rows = draw_rows(features, 50, np.random.default_rng(0))

    assert rows.shape == (50, 2)
    assert set(rows[:, 1]) == {"red", "green"}


def test_unseen_drops_candidates_equal_to_a_data_row() -> None:
    data = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    candidates = np.array([[1.0, 2.0], [1.0, 4.0], [3.0, 4.0], [5.0, 6.0]], dtype=np.float32)

    np.testing.assert_array_equal(unseen(candidates, [data]), [[1.0, 4.0], [5.0, 6.0]])


def test_sample_of_few_valued_columns_leaves_whole_numbers_rather_than_repeat_a_record(tmp_path: Path) -> None:
    every_combination = np.array([[a, b] for a in (0, 1) for b in (0, 1)] * 10, dtype=np.float32)
    session = linear_session(tmp_path, 2, 2)

    instances, outputs = synthetic_sample(session, every_combination, [every_combination], 3, seed=0)

    assert len(instances) == 3
    assert len(unseen(instances, [every_combination])) == 3
    assert instances.min() >= 0.0 and instances.max() <= 1.0
    np.testing.assert_allclose(outputs, session.run(None, {"features": instances})[0], atol=0)


def test_sample_of_constant_features_is_refused(tmp_path: Path) -> None:
    constant = np.ones((20, 3), dtype=np.float32)

    with pytest.raises(ValueError, match="every feature holds one value"):
        synthetic_sample(linear_session(tmp_path, 3, 2), constant, [constant], 3, seed=0)


def test_spread_prefers_distinct_classes_then_the_least_confident() -> None:
    outputs = np.array([[0.99, 0.01], [0.6, 0.4], [0.2, 0.8], [0.7, 0.3]])

    assert spread(outputs, 3).tolist() == [1, 2, 3]
    assert spread(np.array([5.0, 1.0, 3.0, 9.0, 7.0]), 3).tolist() == [1, 0, 3]  # lowest, median, highest


@pytest.mark.parametrize("data", sorted(BUNDLED))
def test_bundle_trained_on_bundled_data_holds_no_data_row_and_serves_its_sample(
    data: str, tmp_path: Path, load_predict_app: Callable[..., ModuleType], lambda_context: object
) -> None:
    target, classes = BUNDLED[data]
    path, out = REPO / f"examples/data/{data}.csv", tmp_path / "bundle"

    code = main(["--data", str(path), "--target", target, "--out", str(out), "--dry-run", "--progress", "none"])

    assert code == 0
    card = json.loads((out / "model.json").read_text())
    instances = np.asarray(card["sample"]["instances"], dtype=np.float32)
    rows = pd.read_csv(path).drop(columns=[target]).to_numpy(dtype=np.float32)
    assert instances.shape == (3, rows.shape[1])
    assert not any((rows == instance).all(axis=1).any() for instance in instances)
    assert ((instances >= rows.min(axis=0)) & (instances <= rows.max(axis=0))).all()
    # The function's self-test at load accepts the sample, POST /predict reproduces its outputs, and the
    # pre-traffic check (GET /model's public view, then the sample) passes.
    app = load_predict_app(out)
    served = json.loads(app.lambda_handler(read_event("model.json"), lambda_context)["body"])
    event = read_event("predict.json")
    event["body"] = json.dumps({"instances": served["sample"]["instances"]})
    response = app.lambda_handler(event, lambda_context)
    assert response["statusCode"] == 200, response["body"]
    answer = json.loads(response["body"])
    import_pretraffic_hook().compare(served, answer)  # raises CheckFailed on any difference
    key = "probabilities" if classes else "predictions"
    np.testing.assert_allclose(answer[key], card["sample"]["outputs"], rtol=1e-5, atol=1e-6)
    if classes:
        assert len({int(np.argmax(row)) for row in card["sample"]["outputs"]}) > 1  # not one class three times
