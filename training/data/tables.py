"""File access for the training data: where it lives (a path, a folder or S3) and how each format is read."""

import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd


class DataError(ValueError):
    """The data cannot be used as given; the message says what is wrong and how to fix it."""


READERS = (".csv", ".parquet", ".pq", ".npz")
NPZ_MATRIX_KEYS = ("x", "features")  # a 2-D array under one of these names holds every feature
NPZ_HOW = "save it with numpy.savez(x=..., y=...)"


@contextmanager
def open_data(location: str) -> Iterator[Path]:
    """The local file behind `location`, for the duration: the one place that knows where data comes from.

    An s3:// URI is downloaded to a temporary folder, removed afterwards (a URI ending in "/" stands for
    the one data file under it). A folder holding exactly one CSV, Parquet or NPZ file stands for that
    file (a SageMaker channel).

    Raises:
        DataError: no such file, or a folder without exactly one data file.
        StorageError: the S3 object cannot be read (training.cloud.s3).
    """
    if location.startswith("s3://"):
        from training.cloud.s3 import download_data  # boto3 only for jobs that read S3

        with tempfile.TemporaryDirectory(prefix="training-data-") as scratch:
            yield download_data(location, Path(scratch), READERS)
        return
    yield local_file(location)


def local_file(location: str) -> Path:
    path = Path(location)
    if path.is_dir():
        found = sorted(file for file in path.iterdir() if file.is_file() and file.suffix.lower() in READERS)
        if len(found) != 1:
            raise DataError(f"{path} holds {len(found)} CSV/Parquet/NPZ files; pass --data with the path of one")
        return found[0]
    if not path.is_file():
        raise DataError(f"{path} not found; pass --data with the path of a CSV, Parquet or NPZ file")
    return path


def read_table(path: Path, exclude: Sequence[str] = ()) -> pd.DataFrame:
    """A CSV, Parquet or NPZ file as a table, with the `exclude` columns dropped as it is read."""
    suffix = path.suffix.lower()
    if suffix not in READERS:
        raise DataError(f"{path.name}: unknown file type {suffix or '(none)'!r}; use a .csv, .parquet or .npz file")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty; pass a file with a header row and data rows")
    try:
        if suffix == ".csv":
            columns = [str(name) for name in pd.read_csv(path, nrows=0).columns]
            check_excluded(columns, exclude)
            table = pd.read_csv(path, usecols=[name for name in columns if name not in exclude])
        else:
            table = pd.read_parquet(path) if suffix in (".parquet", ".pq") else read_npz(path)
            table.columns = [str(name) for name in table.columns]
            check_excluded(list(table.columns), exclude)
            table = table.drop(columns=list(exclude))
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty; pass a file with a header row and data rows") from None
    except (ValueError, OSError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(f"{path.name} could not be read as {suffix[1:]}: {reason}") from None
    if table.empty:
        raise DataError(f"{path} has no data rows; pass a file with a header row and data rows")
    return table


def read_npz(path: Path) -> pd.DataFrame:
    """One 2-D array `x` or `features` (columns feature_0...) plus 1-D arrays, or one 1-D array per column."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DataError(f"{path.name} holds a single array, not an archive; {NPZ_HOW}")
        with loaded as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (zipfile.BadZipFile, EOFError, zlib.error) as error:  # a truncated or damaged archive
        raise DataError(
            f"{path.name} is not a readable NPZ archive ({error or type(error).__name__}); {NPZ_HOW}"
        ) from None
    strays = [key for key, array in arrays.items() if not isinstance(array, np.ndarray)]
    if strays:
        raise DataError(
            f"{path.name}: member {strays[0]!r} is not a NumPy array; an NPZ file holds arrays only, {NPZ_HOW}"
        )
    if sum(key in NPZ_MATRIX_KEYS for key in arrays) > 1:
        raise DataError(f"{path.name}: keep the features in one 2-D array, named {' or '.join(NPZ_MATRIX_KEYS)}")
    columns: dict[str, np.ndarray] = {}
    for key, array in arrays.items():
        if array.ndim == 2 and key in NPZ_MATRIX_KEYS:
            columns.update({f"feature_{i}": array[:, i] for i in range(array.shape[1])})
        elif array.ndim == 1:
            columns[key] = array
        else:
            raise DataError(
                f"{path.name}: array {key!r} has shape {array.shape}; use 1-D arrays, "
                f"or one 2-D array named {' or '.join(NPZ_MATRIX_KEYS)}"
            )
    lengths = {key: len(column) for key, column in columns.items()}
    if len(set(lengths.values())) > 1:
        raise DataError(f"{path.name}: arrays differ in length {lengths}; every array needs one entry per row")
    return pd.DataFrame(columns)


def check_excluded(columns: list[str], exclude: Sequence[str]) -> None:
    unknown = [name for name in exclude if name not in columns]
    if unknown:
        raise DataError(f"--exclude: no column named {unknown[0]!r}; available columns: {describe(columns)}")


def describe(columns: list[str], limit: int = 20) -> str:
    shown = ", ".join(columns[:limit])
    return shown + (f", ... ({len(columns) - limit} more)" if len(columns) > limit else "")
