"""Validation and test rows from files of their own: each part given by a file is that file, the rest is split."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.config import TrainConfig
from training.data.partition import split_sizes
from training.data.splits import DataError, Splits, load_splits

ROOT = Path(__file__).resolve().parents[2]


def write_rows(path: Path, first: int, rows: int) -> Path:
    """Rows `first`..`first + rows - 1`: `row_id` (a feature, so each row is known wherever it lands), two more
    features and a 3-class target."""
    ids = np.arange(first, first + rows)
    table = pd.DataFrame({"row_id": ids, "size": np.sin(ids) * 10.0, "weight": np.cos(ids), "kind": ids % 3})
    table.to_csv(path, index=False)
    return path


def row_ids(part: np.ndarray) -> list[int]:
    return [int(value) for value in part[:, 0]]


def load(tmp_path: Path, val_data: Path | None = None, test_data: Path | None = None) -> Splits:
    data = write_rows(tmp_path / "train.csv", 0, 200)
    val, test = (str(path) if path else "" for path in (val_data, test_data))
    return load_splits(TrainConfig(data=str(data), target="kind", val_data=val, test_data=test))


def test_a_validation_file_is_the_validation_split_and_the_training_file_gives_train_and_test(tmp_path: Path) -> None:
    val_file = write_rows(tmp_path / "val.csv", 1000, 30)

    splits = load(tmp_path, val_data=val_file)

    assert row_ids(splits.val.x) == list(range(1000, 1030))  # every row, in the file's order
    assert np.array_equal(splits.val.y, np.arange(1000, 1030) % 3)
    _, n_test = split_sizes(200, 0.15, 0.15)
    assert len(splits.test.y) == n_test
    assert sorted(row_ids(splits.train.x) + row_ids(splits.test.x)) == list(range(200))
    assert splits.mean == pytest.approx(splits.train.x.mean(axis=0), rel=1e-5)  # measured on training rows only


def test_validation_and_test_files_leave_every_row_of_the_training_file_to_training(tmp_path: Path) -> None:
    splits = load(
        tmp_path,
        val_data=write_rows(tmp_path / "val.csv", 1000, 30),
        test_data=write_rows(tmp_path / "test.csv", 2000, 40),
    )

    assert sorted(row_ids(splits.train.x)) == list(range(200))
    assert row_ids(splits.val.x) == list(range(1000, 1030))
    assert row_ids(splits.test.x) == list(range(2000, 2040))


def test_a_test_file_alone_keeps_the_seeded_validation_split(tmp_path: Path) -> None:
    split_only = load(tmp_path)

    with_test_file = load(tmp_path, test_data=write_rows(tmp_path / "test.csv", 2000, 40))

    assert row_ids(with_test_file.val.x) == row_ids(split_only.val.x)
    assert row_ids(with_test_file.test.x) == list(range(2000, 2040))
    assert sorted(row_ids(with_test_file.train.x)) == sorted(row_ids(split_only.train.x) + row_ids(split_only.test.x))


def test_a_part_file_with_other_columns_is_refused_naming_them(tmp_path: Path) -> None:
    other = pd.read_csv(write_rows(tmp_path / "val.csv", 1000, 30)).rename(columns={"weight": "mass"})
    other.to_csv(tmp_path / "val.csv", index=False)

    with pytest.raises(DataError) as refused:
        load(tmp_path, val_data=tmp_path / "val.csv")

    assert str(refused.value) == (
        "--val-data val.csv: its columns must be those of train.csv, but it lacks 'weight' and adds 'mass'"
    )


def test_a_part_file_without_targets_is_refused(tmp_path: Path) -> None:
    empty = pd.read_csv(write_rows(tmp_path / "test.csv", 2000, 5)).assign(kind=np.nan)
    empty.to_csv(tmp_path / "test.csv", index=False)

    with pytest.raises(DataError, match=r"^--test-data: no row has a target"):
        load(tmp_path, test_data=tmp_path / "test.csv")


def test_a_missing_part_file_is_refused_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"^--val-data: .*absent\.csv not found"):
        load(tmp_path, val_data=tmp_path / "absent.csv")
