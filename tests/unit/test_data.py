"""Reading, cleaning and splitting training data: the example sets, hand-made files and every user mistake."""

import hashlib
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.config import TrainConfig
from training.data.splits import DataError, Splits, load_splits

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "examples" / "data" / "digits.csv"
DIABETES = ROOT / "examples" / "data" / "diabetes.csv"


def write_csv(path: Path, columns: dict[str, list[object]]) -> Path:
    pd.DataFrame(columns).to_csv(path, index=False)
    return path


def tabular(rows: int = 120, seed: int = 0) -> dict[str, list[object]]:
    """`row_id` identifies each row (a feature, so it travels through the split); `kind` is a 3-class text target."""
    rng = np.random.default_rng(seed)
    return {
        "row_id": list(range(rows)),
        "size": rng.normal(50.0, 10.0, rows).round(3).tolist(),
        "weight": rng.normal(5.0, 2.0, rows).round(3).tolist(),
        "kind": [["cat", "ant", "bee"][i % 3] for i in range(rows)],
    }


def load(path: Path, **settings: object) -> Splits:
    return load_splits(TrainConfig(data=str(path), **settings))  # type: ignore[arg-type]


def all_rows(splits: Splits) -> tuple[np.ndarray, np.ndarray]:
    return (
        np.concatenate([splits.train.x, splits.val.x, splits.test.x]),
        np.concatenate([splits.train.y, splits.val.y, splits.test.y]),
    )


def test_load_splits_digits_is_a_stratified_ten_class_split() -> None:
    splits = load(DIGITS, target="label")

    assert splits.task == "classification"
    assert splits.labels == [str(digit) for digit in range(10)]
    assert splits.feature_names[:2] == ["pixel_0_0", "pixel_0_1"] and splits.n_features == 64
    assert splits.n_outputs == 10
    assert (len(splits.train.y), len(splits.val.y), len(splits.test.y)) == (1259, 269, 269)
    assert splits.train.x.dtype == np.float32 and splits.train.y.dtype == np.int64
    # stratified: each of the ten digits (about 180 rows each) gives 26 or 27 rows to the test split
    assert set(np.bincount(splits.test.y, minlength=10)) <= {26, 27}
    assert splits.cleaning == {
        "rows_read": 1797,
        "rows_dropped_missing_target": 0,
        "values_imputed": 0,
        "columns_excluded": 0,
    }


def test_load_splits_diabetes_is_regression_with_training_target_scale() -> None:
    splits = load(DIABETES, target="progression")

    assert splits.task == "regression"
    assert splits.labels == [] and splits.n_outputs == 1
    assert splits.n_features == 10
    assert (len(splits.train.y), len(splits.val.y), len(splits.test.y)) == (310, 66, 66)
    assert splits.train.y.dtype == np.float32
    assert splits.target_mean == pytest.approx(float(splits.train.y.mean()), rel=1e-6)
    assert splits.target_std == pytest.approx(float(splits.train.y.std()), rel=1e-6)


def test_load_splits_standardisation_comes_from_the_training_split_only() -> None:
    splits = load(DIABETES, target="progression")
    everything, _ = all_rows(splits)

    np.testing.assert_allclose(splits.mean, splits.train.x.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(splits.std, splits.train.x.std(axis=0), rtol=1e-5)
    assert not np.allclose(splits.mean, everything.mean(axis=0), rtol=1e-5)
    assert splits.mean.dtype == np.float32 and splits.std.dtype == np.float32


def test_load_splits_constant_feature_gets_std_one() -> None:
    splits = load(DIGITS, target="label")

    constant = splits.feature_names.index("pixel_0_0")  # blank in every digit image
    assert splits.std[constant] == 1.0


def test_load_splits_is_seeded_and_covers_every_row_once(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "animals.csv", tabular())

    first, again, other = load(path, target="kind"), load(path, target="kind"), load(path, target="kind", seed=1)
    ids = [sorted(split.x[:, 0].astype(int).tolist()) for split in (first.train, first.val, first.test)]

    assert sorted(ids[0] + ids[1] + ids[2]) == list(range(120))
    np.testing.assert_array_equal(first.test.x, again.test.x)
    assert not np.array_equal(first.test.x, other.test.x)
    assert (len(first.train.y), len(first.val.y), len(first.test.y)) == (84, 18, 18)


def test_load_splits_text_target_becomes_sorted_labels(tmp_path: Path) -> None:
    columns = tabular()
    splits = load(write_csv(tmp_path / "animals.csv", columns), target="kind")
    x, y = all_rows(splits)

    assert splits.task == "classification"
    assert splits.labels == ["ant", "bee", "cat"]
    kinds = np.array(columns["kind"])[x[:, 0].astype(int)]
    assert [splits.labels[index] for index in y] == kinds.tolist()


def test_load_splits_numeric_labels_sort_as_numbers(tmp_path: Path) -> None:
    columns = tabular() | {"kind": [[10, 2, 1][i % 3] for i in range(120)]}

    splits = load(write_csv(tmp_path / "numbers.csv", columns), target="kind")

    assert splits.task == "classification"
    assert splits.labels == ["1", "2", "10"]


@pytest.mark.parametrize(
    ("target", "task"),
    [
        ([i % 4 for i in range(120)], "classification"),  # few whole numbers, 30 rows each
        ([i % 2 * 0.5 for i in range(120)], "classification"),  # two values: a binary label
        ([float(i) * 1.5 for i in range(120)], "regression"),  # fractional values
        ([i % 60 for i in range(120)], "regression"),  # whole numbers, but 60 distinct values (> 50)
        ([i % 20 for i in range(120)], "regression"),  # 20 values over 120 rows: 6 rows each (< 10)
    ],
    ids=["four-classes", "binary", "fractional", "many-values", "few-rows-per-value"],
)
def test_load_splits_auto_task_follows_the_documented_rule(tmp_path: Path, target: list[object], task: str) -> None:
    path = write_csv(tmp_path / "data.csv", tabular() | {"kind": target})

    assert load(path, target="kind").task == task


def test_load_splits_explicit_task_overrides_auto(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "data.csv", tabular() | {"kind": [i % 4 for i in range(120)]})

    splits = load(path, target="kind", task="regression")

    assert splits.task == "regression" and splits.labels == []
    assert splits.train.y.dtype == np.float32


def test_load_splits_drops_missing_targets_and_imputes_training_medians(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    columns = tabular()
    for row in (3, 50, 77):
        columns["kind"][row] = None
    for row in (5, 6, 90, 91, 119):
        columns["size"][row] = None
    path = write_csv(tmp_path / "holes.csv", columns)

    with caplog.at_level(logging.INFO, logger="training"):
        splits = load(path, target="kind")

    assert splits.cleaning["rows_read"] == 120
    assert splits.cleaning["rows_dropped_missing_target"] == 3
    assert splits.cleaning["values_imputed"] == 5
    x, _ = all_rows(splits)
    assert not np.isnan(x).any() and len(x) == 117
    sizes = np.array(columns["size"], dtype=np.float64)
    train_ids = splits.train.x[:, 0].astype(int)
    median = np.nanmedian(sizes[train_ids])
    imputed = x[np.isin(x[:, 0].astype(int), [5, 6, 90, 91, 119]), 1]
    assert len(imputed) == 5
    np.testing.assert_allclose(imputed, np.float32(median))
    assert "3 dropped (missing target)" in caplog.text and "5 values imputed" in caplog.text


def test_load_splits_excluded_columns_never_reach_the_features(tmp_path: Path) -> None:
    columns = tabular() | {"email": [f"user{i}@example.com" for i in range(120)]}
    path = write_csv(tmp_path / "people.csv", columns)

    splits = load(path, target="kind", exclude=("email", "row_id"))

    assert splits.feature_names == ["size", "weight"]
    assert splits.cleaning["columns_excluded"] == 2


def test_load_splits_features_selects_columns_in_order(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "animals.csv", tabular())

    splits = load(path, target="kind", features=("weight", "row_id"))

    assert splits.feature_names == ["weight", "row_id"]
    assert splits.train.x.shape[1] == 2


def test_load_splits_parquet_and_npz_read_like_csv(tmp_path: Path) -> None:
    columns = tabular() | {"kind": [i % 3 for i in range(120)]}
    frame = pd.DataFrame(columns)
    frame.to_parquet(tmp_path / "data.parquet")
    np.savez(tmp_path / "columns.npz", **{name: frame[name].to_numpy() for name in frame.columns})
    np.savez(tmp_path / "matrix.npz", x=frame[["row_id", "size", "weight"]].to_numpy(), kind=frame["kind"].to_numpy())

    from_csv = load(write_csv(tmp_path / "data.csv", columns), target="kind")
    from_parquet = load(tmp_path / "data.parquet", target="kind")
    from_columns = load(tmp_path / "columns.npz", target="kind")
    from_matrix = load(tmp_path / "matrix.npz", target="kind")

    for splits in (from_parquet, from_columns, from_matrix):
        np.testing.assert_array_equal(splits.test.x, from_csv.test.x)
        np.testing.assert_array_equal(splits.test.y, from_csv.test.y)
    assert from_columns.feature_names == ["row_id", "size", "weight"]
    assert from_matrix.feature_names == ["feature_0", "feature_1", "feature_2"]


def test_load_splits_fingerprints_the_file_bytes() -> None:
    splits = load(DIABETES, target="progression")

    assert splits.data_sha256 == hashlib.sha256(DIABETES.read_bytes()).hexdigest()


def test_load_splits_reads_the_one_data_file_in_a_folder(tmp_path: Path) -> None:
    write_csv(tmp_path / "train.csv", tabular())

    assert load(tmp_path, target="kind").labels == ["ant", "bee", "cat"]


def write_bad(tmp_path: Path, case: str) -> tuple[Path, dict[str, object]]:
    """A file (and settings) that each hold one classic user mistake."""
    if case == "missing-file":
        return tmp_path / "nowhere.csv", {"target": "kind"}
    if case == "empty-file":
        (tmp_path / "empty.csv").write_bytes(b"")
        return tmp_path / "empty.csv", {"target": "kind"}
    if case == "header-only":
        (tmp_path / "header.csv").write_text("size,kind\n")
        return tmp_path / "header.csv", {"target": "kind"}
    if case == "unknown-type":
        (tmp_path / "data.xlsx").write_text("size,kind\n1,a\n")
        return tmp_path / "data.xlsx", {"target": "kind"}
    columns = tabular()
    if case == "identifier-feature":
        columns["customer"] = [f"customer-{row:04d}" for row in range(120)]
    if case == "one-class":
        columns["kind"] = ["cat"] * 120
    if case == "all-targets-missing":
        columns["kind"] = [None] * 120
    path = write_csv(tmp_path / "data.csv", columns)
    settings: dict[str, object] = {"target": "species" if case == "unknown-target" else "kind"}
    if case == "unknown-exclude":
        settings["exclude"] = ("emial",)
    if case == "target-excluded":
        settings["exclude"] = ("kind",)
    if case == "regression-on-text":
        settings["task"] = "regression"
    if case == "too-few-rows":
        write_csv(path, {key: value[:4] for key, value in columns.items()})
    return path, settings


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing-file", r"nowhere\.csv not found; pass --data"),
        ("empty-file", r"empty\.csv is empty"),
        ("header-only", r"header\.csv has no data rows"),
        ("unknown-type", r"unknown file type '\.xlsx'; use a \.csv, \.parquet or \.npz file"),
        ("unknown-target", r"--target 'species' is not a column; available columns: row_id, size, weight, kind"),
        (
            "identifier-feature",
            r"column 'customer' looks like an identifier or free text \(84 distinct values in 84 training rows\), "
            r"not a category; pass --exclude customer, or --max-categories 84",
        ),
        ("one-class", r"target 'kind' has one class \('cat'\)"),
        ("all-targets-missing", r"every row of data\.csv has a missing target 'kind'"),
        ("unknown-exclude", r"--exclude: no column named 'emial'; available columns: row_id"),
        (
            "too-few-rows",
            r"too few rows per class to split: 4 rows over 3 classes, the largest with 2; .* needs 4 rows",
        ),
        ("target-excluded", r"'kind' is both used \(--target/--features\) and dropped \(--exclude\)"),
        ("regression-on-text", r"--task regression needs a numeric target; 'kind' holds values such as 'cat'"),
    ],
)
def test_load_splits_user_mistake_is_one_readable_line(tmp_path: Path, case: str, expected: str) -> None:
    path, settings = write_bad(tmp_path, case)

    with pytest.raises(DataError, match=expected) as caught:
        load(path, **settings)

    assert "\n" not in str(caught.value)


def test_load_splits_long_column_list_is_shortened() -> None:
    with pytest.raises(DataError, match=r"pixel_2_3, \.\.\. \(45 more\)$"):
        load(DIGITS, target="digit")


def test_not_numeric_feature_quotes_the_first_value_that_is_not_a_number(tmp_path: Path) -> None:
    columns = tabular()
    columns["size"] = [1.5, 2.5, "heavy", 4.0, "light"] + [3.0] * 115
    path = write_csv(tmp_path / "data.csv", columns)

    with pytest.raises(DataError, match=r"feature column 'size' is not numeric \(e\.g\. 'heavy'\)"):
        load(path, target="kind")


def test_regression_on_text_quotes_the_first_value_that_is_not_a_number(tmp_path: Path) -> None:
    columns = tabular()
    columns["price"] = ["10", "12.5", "unknown", *["7"] * 117]
    path = write_csv(tmp_path / "data.csv", columns)

    with pytest.raises(DataError, match=r"'price' holds values such as 'unknown'"):
        load(path, target="price", task="regression", exclude=("kind",))


def test_many_classes_with_few_rows_each_are_refused_for_too_few_rows_per_class(tmp_path: Path) -> None:
    columns = tabular(rows=600)
    columns["kind"] = [f"class_{i % 500}" for i in range(600)]  # 100 classes of 2 rows, 400 of 1
    path = write_csv(tmp_path / "data.csv", columns)

    with pytest.raises(DataError) as caught:
        load(path, target="kind")

    assert str(caught.value).startswith(
        "too few rows per class to split: 600 rows over 500 classes, the largest with 2;"
    )
    assert "a class needs 4 rows" in str(caught.value)


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("weight", 1e39, r"feature column 'weight' holds values beyond ±1\.8e\+19 \(e\.g\. 1e\+39\)"),
        ("weight", -3e20, r"feature column 'weight' holds values beyond ±1\.8e\+19 \(e\.g\. -3e\+20\)"),
        ("price", 1e30, r"target 'price' holds values beyond ±1\.8e\+19 \(e\.g\. 1e\+30\)"),
    ],
)
def test_values_beyond_float32_squares_are_refused_naming_the_column(
    tmp_path: Path, column: str, value: float, expected: str
) -> None:
    columns = tabular() | {"price": np.linspace(1.0, 2.0, 120).tolist()}
    columns[column] = [*columns[column][:-1], value]
    path = write_csv(tmp_path / "data.csv", columns)

    with pytest.raises(DataError, match=expected):
        load(path, target="price", task="regression", exclude=("kind",))


def test_values_just_inside_the_float32_limit_give_finite_statistics(tmp_path: Path) -> None:
    columns = tabular() | {"price": [(-1) ** i * 1.8e19 for i in range(120)]}
    columns["weight"] = [(-1) ** i * 1.8e19 for i in range(120)]
    path = write_csv(tmp_path / "data.csv", columns)

    splits = load(path, target="price", task="regression", exclude=("kind",))

    assert np.isfinite(splits.std).all() and np.isfinite(splits.mean).all()
    assert splits.std[splits.feature_names.index("weight")] == pytest.approx(1.8e19, rel=0.01)
    assert splits.target_std == pytest.approx(1.8e19, rel=0.01)
