"""Categorical feature columns in training: which columns, their vocabularies, buckets and refusals, and the
parity gate over the encoding inside the graph."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest

from training.config import TrainConfig
from training.data.categories import MISSING, as_text, one_hot
from training.data.splits import DataError, Splits, load_splits
from training.export.encoding import PROBE_ROWS, add_categorical_inputs, graph_inputs, probe_rows, unseen_value
from training.export.export import ExportError, check_parity, export_onnx, torch_outputs
from training.export.onnx_run import open_session
from training.models import build_model, serving_model

ROOT = Path(__file__).resolve().parents[2]
PENGUINS = ROOT / "examples" / "data" / "penguins.csv"
DIABETES = ROOT / "examples" / "data" / "diabetes.csv"


def table(**extra: Sequence[object]) -> dict[str, Sequence[object]]:
    """120 rows: a numeric feature `size`, a 3-class target `kind`, and `extra` columns."""
    rng = np.random.default_rng(0)
    return {"size": rng.normal(50.0, 10.0, 120).round(3).tolist(), "kind": ["a", "b", "c"] * 40, **extra}


def load(tmp_path: Path, columns: dict[str, Sequence[object]], **settings: object) -> Splits:
    path = tmp_path / "data.csv"
    pd.DataFrame(columns).to_csv(path, index=False)
    return load_splits(TrainConfig(data=str(path), target="kind", **settings))  # type: ignore[arg-type]


def test_penguins_text_columns_become_categorical_with_training_vocabularies() -> None:
    splits = load_splits(TrainConfig(data=str(PENGUINS), target="species"))

    assert splits.feature_names == [
        "island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex", "year",
    ]  # fmt: skip
    assert splits.vocabularies == {"island": ["Biscoe", "Dream", "Torgersen"], "sex": ["male", "female"]}
    # 5 numbers, then island's 3 values + unseen + missing and sex's 2 + unseen + missing
    assert splits.n_features == 5 + 5 + 4 == splits.train.x.shape[1]
    assert splits.test.categories is not None and splits.test.categories.shape == (len(splits.test.y), 2)
    assert set(splits.train.x[:, 5:].sum(axis=1)) == {2.0}  # one bucket per categorical column, always one


def test_vocabulary_is_most_frequent_first_and_the_rest_share_the_unseen_bucket(tmp_path: Path) -> None:
    city = (["Lyon"] * 5 + ["Paris"] * 3 + ["Nice"] * 2 + ["Metz"]) * 10 + [None] * 10
    splits = load(tmp_path, table(city=city), max_categories=2)

    assert splits.vocabularies == {"city": ["Lyon", "Paris"]}
    everything = np.concatenate([splits.train.x, splits.val.x, splits.test.x])
    texts = np.concatenate([split.categories for split in (splits.train, splits.val, splits.test)])[:, 0]
    buckets = everything[:, 1:].argmax(axis=1)  # size, then Lyon, Paris, unseen, missing
    assert set(buckets[texts == "Lyon"]) == {0} and set(buckets[texts == "Paris"]) == {1}
    assert set(buckets[(texts == "Nice") | (texts == "Metz")]) == {2}
    assert set(buckets[texts == MISSING]) == {3}


def test_integer_codes_are_categorical_when_named_and_numbers_otherwise(tmp_path: Path) -> None:
    codes = [10, 20, 30, 40] * 30

    named = load(tmp_path, table(site=codes), categorical=("site",))
    plain = load(tmp_path, table(site=codes))

    assert named.vocabularies["site"] == sorted(named.vocabularies["site"], key=lambda code: -codes.count(int(code)))
    assert set(named.vocabularies["site"]) == {"10", "20", "30", "40"}
    assert plain.vocabularies == {} and plain.n_features == 2


def test_codes_read_as_floats_because_of_a_gap_keep_their_integer_text() -> None:
    assert as_text(pd.Series([3.0, None, 12.0])).tolist() == ["3", MISSING, "12"]
    assert as_text(pd.Series([1e30, 3.0])).tolist() == ["1e+30", "3.0"]  # beyond exact integers: as written


def test_one_hot_puts_unseen_and_missing_in_their_own_buckets() -> None:
    texts = np.array([["b"], ["zz"], [MISSING], ["a"]], dtype=object)

    assert one_hot(texts, [["a", "b"]]).tolist() == [[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [1, 0, 0, 0]]


def test_numeric_only_data_has_no_categories() -> None:
    splits = load_splits(TrainConfig(data=str(DIABETES), target="progression"))

    assert splits.vocabularies == {} and splits.test.categories is None
    assert splits.n_features == len(splits.feature_names) == splits.train.x.shape[1] == 10


@pytest.mark.parametrize(
    ("extra", "settings", "expected"),
    [
        (
            {"note": [f"free text number {row}" for row in range(120)]},
            {},
            r"column 'note' looks like an identifier or free text \(84 distinct values in 84 training rows\)",
        ),
        ({"note": ["x" * 300, "y"] * 60}, {}, r"'note' holds a value of 300 characters, over the 256"),
        ({"size2": ["1.5", "2.5", "heavy"] * 40}, {}, r"'size2' is not numeric \(e\.g\. 'heavy'\); .* --categorical"),
        ({"city": ["Lyon"] * 120}, {"categorical": ("town",)}, r"--categorical: 'town' is not a feature column"),
        ({"city": [None] * 120}, {"categorical": ("city",)}, r"'city' has no values in the training rows"),
        ({"features": ["a", "b", "c"] * 40}, {}, r"categorical column 'features' has the name of the model's numeric"),
    ],
    ids=["identifier", "long-text", "numbers-with-a-typo", "unknown-column", "empty-in-training", "named-features"],
)
def test_unusable_categorical_column_is_one_readable_line(
    tmp_path: Path, extra: dict[str, Sequence[object]], settings: dict[str, object], expected: str
) -> None:
    with pytest.raises(DataError, match=expected) as caught:
        load(tmp_path, table(**extra), **settings)

    assert "\n" not in str(caught.value)


def test_every_feature_categorical_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="at least one numeric feature"):
        load(tmp_path, {"city": ["Lyon", "Nice"] * 60, "kind": ["a", "b", "c"] * 40})


def test_an_identifier_is_encoded_when_max_categories_allows_it(tmp_path: Path) -> None:
    splits = load(tmp_path, table(customer=[f"c{row}" for row in range(120)]), max_categories=200)

    assert len(splits.vocabularies["customer"]) == 84


def test_parity_probes_reach_the_unseen_and_missing_buckets_of_each_column() -> None:
    splits = load_splits(TrainConfig(data=str(PENGUINS), target="species"))

    probes = probe_rows(splits)

    assert probes.categories is not None
    rows = PROBE_ROWS
    island, sex = probes.x[:, 5:10], probes.x[:, 10:14]  # after the 5 numbers: 3 + 2 buckets, then 2 + 2
    assert island[:rows, 3].all() and island[rows : 2 * rows, 4].all()  # island unseen, then missing
    assert sex[2 * rows : 3 * rows, 2].all() and sex[3 * rows :, 3].all()  # sex unseen, then missing
    assert set(probes.categories[:rows, 0]) == {unseen_value(splits.vocabularies["island"])}
    assert set(probes.categories[rows : 2 * rows, 0]) == {MISSING}


def test_parity_gate_refuses_a_graph_whose_unseen_bucket_is_wrong(tmp_path: Path) -> None:
    config = TrainConfig(data=str(PENGUINS), target="species", epochs=1)
    splits = load_splits(config)
    serving = serving_model(build_model(config, splits))  # untrained: its weights tell the buckets apart all the same
    path = export_onnx(serving, splits.n_features, "probabilities", config.opset, tmp_path / "model.onnx")
    add_categorical_inputs(path, splits)
    model = onnx.load(path)
    (encoder, *_) = [node for node in model.graph.node if node.op_type == "LabelEncoder"]
    default = next(attribute for attribute in encoder.attribute if attribute.name == "default_int64")
    default.i = 0  # unseen islands scored as Biscoe
    onnx.save(model, path)
    session = open_session(path)
    probes = probe_rows(splits)

    check_parity(session, graph_inputs(splits.test, splits), torch_outputs(serving, splits.test.x), 1e-5)
    with pytest.raises(ExportError, match="parity check failed"):
        check_parity(session, graph_inputs(probes, splits), torch_outputs(serving, probes.x), 1e-5)
