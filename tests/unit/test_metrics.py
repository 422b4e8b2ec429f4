"""Classification and regression metrics against values worked out by hand."""

import json
import warnings

import numpy as np
import pytest

from training.fit.metrics import classification_metrics, regression_metrics

LABELS = ["a", "b", "c"]
# Confusion matrix (rows = true): a: [1, 1, 0], b: [0, 2, 0], c: [1, 0, 1]
Y_TRUE = np.array([0, 0, 1, 1, 2, 2])
Y_PRED = np.array([0, 1, 1, 1, 0, 2])


def test_classification_metrics_match_hand_computed_values() -> None:
    metrics = classification_metrics(Y_TRUE, Y_PRED, LABELS)

    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert metrics["per_class"]["a"] == pytest.approx({"precision": 1 / 2, "recall": 1 / 2, "f1": 1 / 2, "support": 2})
    assert metrics["per_class"]["b"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert metrics["per_class"]["c"] == pytest.approx({"precision": 1.0, "recall": 1 / 2, "f1": 2 / 3, "support": 2})
    assert metrics["precision_macro"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert metrics["recall_macro"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    assert metrics["f1_macro"] == pytest.approx((1 / 2 + 0.8 + 2 / 3) / 3)


def test_classification_metrics_never_predicted_class_scores_zero_without_warning() -> None:
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        metrics = classification_metrics(np.array([0, 1, 2, 2]), np.array([0, 1, 1, 1]), LABELS)

    assert metrics["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert metrics["per_class"]["b"]["precision"] == pytest.approx(1 / 3)
    assert metrics["precision_macro"] == pytest.approx((1 + 1 / 3 + 0) / 3)
    assert metrics["f1_macro"] == pytest.approx((1 + 0.5 + 0) / 3)


def test_classification_metrics_macro_average_skips_classes_absent_from_truth_and_predictions() -> None:
    metrics = classification_metrics(np.array([0, 1]), np.array([0, 1]), ["a", "b", "c"])

    assert metrics["f1_macro"] == 1.0
    assert metrics["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert metrics["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [0, 0, 0]]


def test_classification_metrics_are_plain_json() -> None:
    metrics = classification_metrics(Y_TRUE.astype(np.int64), Y_PRED.astype(np.int64), LABELS)

    assert json.loads(json.dumps(metrics, allow_nan=False)) == metrics


@pytest.mark.parametrize(
    ("y_true", "y_pred"),
    [([0, 1], [0]), ([], []), ([0, 3], [0, 1]), ([0, 1], [0, -1])],
    ids=["length-mismatch", "empty", "true-index-out-of-range", "predicted-index-negative"],
)
def test_classification_metrics_refuse_inconsistent_inputs(y_true: list[int], y_pred: list[int]) -> None:
    with pytest.raises(ValueError, match=r"class indices|equally many"):
        classification_metrics(np.array(y_true, dtype=np.int64), np.array(y_pred, dtype=np.int64), LABELS)


def test_regression_metrics_match_hand_computed_values() -> None:
    metrics = regression_metrics(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0, 3.0, 6.0]))

    # residuals 0, 0, 0, 2; squares around the mean 2.5 sum to 5
    assert metrics == pytest.approx({"mse": 1.0, "rmse": 1.0, "mae": 0.5, "r2": 1 - 4 / 5})


def test_regression_metrics_r2_is_zero_for_predicting_the_mean() -> None:
    y = np.array([3.0, 5.0, 10.0], dtype=np.float32)

    assert regression_metrics(y, np.full(3, y.mean()))["r2"] == pytest.approx(0.0, abs=1e-7)


def test_regression_metrics_constant_target_gives_finite_r2() -> None:
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        perfect = regression_metrics(np.array([2.0, 2.0]), np.array([2.0, 2.0]))
        off = regression_metrics(np.array([2.0, 2.0]), np.array([2.0, 3.0]))

    assert perfect["r2"] == 1.0
    assert off["r2"] == 0.0
    assert off["mae"] == 0.5


def test_regression_metrics_accept_float32_without_losing_precision() -> None:
    y_true = np.array([1e4, 1e4 + 1], dtype=np.float32)
    y_pred = np.array([1e4 + 1, 1e4], dtype=np.float32)

    assert regression_metrics(y_true, y_pred) == pytest.approx({"mse": 1.0, "rmse": 1.0, "mae": 1.0, "r2": -3.0})
