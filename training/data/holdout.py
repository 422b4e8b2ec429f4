"""Validation and test rows from files of their own, in place of the seeded random split for those parts.

`--val-data` and `--test-data` (on SageMaker: the `validation` and `test` channels, as a tuning job
passes them) name files with the training file's columns. A part given by a file is that file's rows
(without those whose target is missing); the training file is split as before, with the same seed, and
its rows that the split puts into a part given by a file are trained on instead.
"""

from collections.abc import Sequence
from contextlib import ExitStack

import numpy as np
import pandas as pd

from training.cloud.contract import file_sha256
from training.config import TrainConfig, flag
from training.data.tables import DataError, open_data, read_table

# Where each row came from: `origin` in read_sources and assign_parts.
TRAINING_FILE, VAL_FILE, TEST_FILE = 0, 1, 2
PART_SETTINGS = {VAL_FILE: "val_data", TEST_FILE: "test_data"}


def read_sources(config: TrainConfig) -> tuple[pd.DataFrame, np.ndarray, str, str]:
    """The training file's rows, then those of the validation and test files when given.

    Returns the table, each row's origin (TRAINING_FILE, VAL_FILE or TEST_FILE), and the training file's
    name and sha256.
    """
    locations = {TRAINING_FILE: config.data} | {
        origin: getattr(config, setting) for origin, setting in PART_SETTINGS.items() if getattr(config, setting)
    }
    tables: list[pd.DataFrame] = []
    with ExitStack() as files:
        for origin, location in locations.items():
            try:
                path = files.enter_context(open_data(location))
            except DataError as error:
                if origin == TRAINING_FILE:
                    raise
                raise DataError(f"{flag(PART_SETTINGS[origin])}: {error}") from None
            table = read_table(path, exclude=config.exclude)
            if origin == TRAINING_FILE:
                name, sha256 = path.name, file_sha256(path)
            else:
                check_columns(
                    flag(PART_SETTINGS[origin]), path.name, list(table.columns), name, list(tables[0].columns)
                )
            tables.append(table)
    origins = np.concatenate([np.full(len(table), origin) for origin, table in zip(locations, tables, strict=True)])
    table = tables[0] if len(tables) == 1 else pd.concat(tables, ignore_index=True)
    return table, origins, name, sha256


def check_columns(setting: str, name: str, columns: Sequence[str], training_name: str, expected: Sequence[str]) -> None:
    missing = [column for column in expected if column not in columns]
    extra = [column for column in columns if column not in expected]
    problems = ([f"lacks {', '.join(map(repr, missing))}"] if missing else []) + (
        [f"adds {', '.join(map(repr, extra))}"] if extra else []
    )
    if problems:
        raise DataError(
            f"{setting} {name}: its columns must be those of {training_name}, but it {' and '.join(problems)}"
        )


def assign_parts(
    split: tuple[np.ndarray, np.ndarray, np.ndarray], origin: np.ndarray, given: tuple[bool, bool]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices of train/val/test, from `split` (a split of the training file's rows, indexed among them).

    `given`: whether the validation and the test rows come from files of their own.
    """
    in_training_file = np.flatnonzero(origin == TRAINING_FILE)
    train, val, test = (in_training_file[part] for part in split)
    trained: list[np.ndarray] = [train]
    if given[0]:
        trained.append(val)
        val = np.flatnonzero(origin == VAL_FILE)
    if given[1]:
        trained.append(test)
        test = np.flatnonzero(origin == TEST_FILE)
    for origin_of_part, part, is_given in ((VAL_FILE, val, given[0]), (TEST_FILE, test, given[1])):
        if is_given and len(part) == 0:
            raise DataError(f"{flag(PART_SETTINGS[origin_of_part])}: no row has a target; fill it or drop the setting")
    return np.concatenate(trained), val, test
