"""A model with categorical inputs (penguins), end to end: trained, loaded, served from positional and named rows."""

import copy
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate

from tests.conftest import ROOT, drop_predict_modules, import_predict_app, read_event
from tests.fixtures.make_tiny_bundle import IRIS_FEATURES

PREDICT = read_event("predict.json")
NAMES = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex", "year"]
GENTOO = ["Biscoe", 46.8, 15.4, 215.0, 5150.0, "male", 2007]
ADELIE = ["Torgersen", 39.1, 18.7, 181.0, 3750.0, "female", 2007]
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")


@pytest.fixture(scope="module")
def app(penguins_bundle: Path) -> Any:
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield import_predict_app(monkeypatch, penguins_bundle)
        drop_predict_modules()


def named(row: list[Any]) -> dict[str, Any]:
    return dict(zip(NAMES, row, strict=True))


def post(app: Any, context: Any, body: Any) -> tuple[int, Any]:
    event = copy.deepcopy(PREDICT)
    event["body"] = body if isinstance(body, str) else json.dumps({"instances": body})
    response = app.lambda_handler(event, context)
    return response["statusCode"], json.loads(response["body"])


def test_card_describes_each_feature_and_the_graph_takes_strings(penguins_bundle: Path) -> None:
    card = json.loads((penguins_bundle / "model.json").read_text())

    assert card["input"]["shape"] == [None, 5] and card["input"]["feature_names"] == NAMES
    island = {"name": "island", "kind": "categorical", "values": ["Biscoe", "Dream", "Torgersen"]}
    assert card["input"]["features"][0] == island
    assert card["input"]["features"][1] == {"name": "bill_length_mm", "kind": "numeric"}
    assert all(isinstance(row[0], str) and isinstance(row[1], float) for row in card["sample"]["instances"])
    assert card["export"]["parity_max_abs_error"] <= card["export"]["parity_tolerance"]


def test_penguins_quality_bar(penguins_bundle: Path) -> None:
    card = json.loads((penguins_bundle / "model.json").read_text())

    assert card["metrics"]["test"]["accuracy"] >= 0.9


def test_positional_and_named_rows_get_the_same_answer(app: Any, lambda_context: Any) -> None:
    rows = [
        GENTOO,
        ADELIE,
        ["Atlantis", *GENTOO[1:]],  # an island training never saw: the unseen bucket
        [*GENTOO[:5], None, 2007],  # sex missing
        [*GENTOO[:5], "", 2007],  # sex missing, as an empty string
    ]

    status, positional = post(app, lambda_context, rows)
    named_status, by_name = post(app, lambda_context, [named(row) for row in rows])

    assert (status, named_status) == (200, 200), positional
    assert positional == by_name
    assert positional["predictions"][:2] == ["Gentoo", "Adelie"]
    probabilities = np.asarray(positional["probabilities"])
    assert probabilities[3].tolist() == probabilities[4].tolist()  # null and "" are both the missing bucket
    assert not np.allclose(probabilities[0], probabilities[2])  # unseen is its own bucket, not Biscoe


def test_rows_in_a_different_key_order_get_the_same_answer(app: Any, lambda_context: Any) -> None:
    shuffled = {name: named(GENTOO)[name] for name in reversed(NAMES)}

    assert post(app, lambda_context, [shuffled]) == post(app, lambda_context, [GENTOO])


def with_value(row: list[Any], name: str, value: Any) -> dict[str, Any]:
    result = named(row)
    result[name] = value
    return result


BAD = "invalid_instances"
ADVERSARIAL = [
    # (case, instances or raw body, error code, words the message must hold): each a 422
    ("number where a category is expected", [with_value(GENTOO, "island", 3)], BAD, "'island' is categorical"),
    ("positional number in a category", [[3, *GENTOO[1:]]], BAD, "'island' is categorical"),
    (
        "string where a number is expected",
        [with_value(GENTOO, "body_mass_g", "heavy")],
        BAD,
        "'body_mass_g' is numeric",
    ),
    ("true where a number is expected", [with_value(GENTOO, "year", True)], BAD, "'year' is numeric"),
    ("null where a number is expected", [with_value(GENTOO, "year", None)], BAD, "'year' is numeric"),
    ("nested object as a category", [with_value(GENTOO, "sex", {"value": "male"})], BAD, "'sex' is categorical"),
    ("nested list as a number", [with_value(GENTOO, "year", [2007])], BAD, "'year' is numeric"),
    ("10,000-character category", [with_value(GENTOO, "island", "B" * 10_000)], BAD, "10000 characters"),
    ("every key missing", [{}], BAD, "'island' is missing"),
    ("one key missing", [{k: v for k, v in named(GENTOO).items() if k != "sex"}], BAD, "'sex' is missing"),
    ("unknown key", [{**named(GENTOO), "colour": "black"}], BAD, "'colour' is not a feature"),
    ("row too short", [GENTOO[:6]], BAD, "has 6 values; this model takes 7"),
    ("row a string", ["Biscoe"], BAD, "instance 0 must be a list"),
    ("number beyond float32", [with_value(GENTOO, "body_mass_g", 1e39)], "non_finite", "instance 0"),
    (
        "duplicate keys",
        '{"instances": [' + json.dumps(named(GENTOO))[:-1] + ', "island": "Dream"}]}',
        "duplicate_key",
        "'island' twice",
    ),
]


@pytest.mark.parametrize(("case", "body", "code", "words"), ADVERSARIAL, ids=[c[0] for c in ADVERSARIAL])
def test_adversarial_rows_get_a_documented_4xx_naming_the_feature(
    app: Any, lambda_context: Any, case: str, body: Any, code: str, words: str
) -> None:
    got, answer = post(app, lambda_context, body)

    assert (got, answer["error"]["code"]) == (422, code), answer
    assert words in answer["error"]["message"]


VALUES = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=300)
JSON_VALUES = st.recursive(
    VALUES, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
)
ROWS = st.lists(JSON_VALUES, max_size=8) | st.dictionaries(st.sampled_from([*NAMES, "x"]), JSON_VALUES, max_size=8)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(ROWS, min_size=1, max_size=3) | JSON_VALUES)
def test_no_generated_row_is_answered_with_a_5xx(app: Any, lambda_context: Any, rows: Any) -> None:
    event = copy.deepcopy(PREDICT)
    try:
        event["body"] = json.dumps({"instances": rows}, allow_nan=True)
    except ValueError:
        return
    response = app.lambda_handler(event, lambda_context)

    assert 200 <= response["statusCode"] < 500, response["body"]
    if response["statusCode"] != 200:
        assert json.loads(response["body"])["error"]["code"]


def test_numeric_model_takes_rows_by_feature_name_too(tiny_bundle: Path, lambda_context: Any) -> None:
    names = json.loads((tiny_bundle / "model.json").read_text())["input"]["feature_names"]
    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
    with pytest.MonkeyPatch.context() as monkeypatch:
        numeric = import_predict_app(monkeypatch, tiny_bundle)
        try:
            status, positional = post(numeric, lambda_context, rows)
            fast_path_only = "records" not in sys.modules  # positional rows of a numeric model never load it
            named_status, by_name = post(numeric, lambda_context, [dict(zip(names, row, strict=True)) for row in rows])
            _, missing = post(numeric, lambda_context, [dict(zip(names[1:], rows[0][1:], strict=True))])
        finally:
            drop_predict_modules()

    assert fast_path_only
    assert (status, named_status) == (200, 200) and positional == by_name
    assert missing["error"]["code"] == "invalid_instances" and f"{names[0]!r} is missing" in missing["error"]["message"]


def test_openapi_describes_both_row_forms_with_names_and_known_values(app: Any, lambda_context: Any) -> None:
    event = read_event("health.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/openapi.json"

    document = json.loads(app.lambda_handler(event, lambda_context)["body"])

    validate(document)
    body = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    positional, by_name = body["schema"]["properties"]["instances"]["items"]["oneOf"]
    assert positional["minItems"] == positional["maxItems"] == 7
    assert by_name["required"] == NAMES and by_name["additionalProperties"] is False
    island = by_name["properties"]["island"]["anyOf"]
    assert island[0]["enum"] == ["Biscoe", "Dream", "Torgersen"] and island[1]["maxLength"] == 256
    assert by_name["properties"]["year"]["type"] == "number"
    assert body["example"]["instances"][0][0] in island[0]["enum"]
    jsonschema.validate({"instances": [GENTOO, named(ADELIE), [*GENTOO[:5], None, 2007]]}, body["schema"])
    for wrong in ([with_value(GENTOO, "island", 3)], [{**named(GENTOO), "colour": "black"}], [GENTOO[:6]]):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"instances": wrong}, body["schema"])


def test_twins_of_the_categorical_encoding_are_equal(app: Any) -> None:
    from training.data import categories

    records, contract = sys.modules["records"], sys.modules["contract"]  # the function's, as app loaded them

    assert (records.MISSING, records.MAX_CATEGORY_CHARS) == (categories.MISSING, categories.MAX_CATEGORY_CHARS)
    assert (contract.CATEGORIES_INPUT, app.MODEL.input_name) == (categories.CATEGORIES, categories.FEATURES)


BROKEN_CARDS = {
    "a vocabulary holding a number": (
        lambda card: card["input"]["features"][0]["values"].append(3),
        "input.features[0].values must list distinct strings",
    ),
    "a vocabulary naming a value twice": (
        lambda card: card["input"]["features"][0]["values"].append("Dream"),
        "input.features[0].values must list distinct strings",
    ),
    "a kind serving does not know": (
        lambda card: card["input"]["features"][1].update(kind="ordinal"),
        "input.features[1] must be {name, kind: numeric|categorical}",
    ),
    "fewer numeric features than the float input's columns": (
        lambda card: (card["input"]["features"].pop(1), card["input"]["feature_names"].pop(1)),
        "input.features has 4 numeric features but input.shape [None, 5] has 5 columns",
    ),
    "feature_names in another order": (
        lambda card: card["input"]["feature_names"].reverse(),
        "input.feature_names must list input.features' names",
    ),
    "features dropped: a numeric card for a graph with a string input": (
        lambda card: card["input"].pop("features"),
        "input.feature_names must be 5 strings",
    ),
    "a sample row with a number for a category": (
        lambda card: card["sample"]["instances"][0].__setitem__(0, 7),
        "sample.instances: instance 0: feature 'island' is categorical",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN_CARDS))
def test_broken_categorical_card_is_refused_with_its_reason(
    case: str, tmp_path: Path, penguins_bundle: Path, lambda_context: Any
) -> None:
    change, reason = BROKEN_CARDS[case]
    bundle = Path(shutil.copytree(penguins_bundle, tmp_path / "bundle"))
    card = json.loads((bundle / "model.json").read_text())
    change(card)
    (bundle / "model.json").write_text(json.dumps(card))
    event = read_event("health.json")

    with pytest.MonkeyPatch.context() as monkeypatch:
        broken = import_predict_app(monkeypatch, bundle)
        try:
            response = broken.lambda_handler(event, lambda_context)
        finally:
            drop_predict_modules()

    assert response["statusCode"] == 503
    assert reason in json.loads(response["body"])["error"]["message"]


@pytest.fixture(scope="module")
def numeric_app(tiny_bundle: Path) -> Any:
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield import_predict_app(monkeypatch, tiny_bundle)
        drop_predict_modules()


NAMED_ROWS = st.dictionaries(st.sampled_from([*IRIS_FEATURES, "x"]), JSON_VALUES, max_size=5)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(NAMED_ROWS | st.lists(JSON_VALUES, max_size=5), min_size=1, max_size=3))
def test_no_generated_named_row_for_a_numeric_model_is_answered_with_a_5xx(
    numeric_app: Any, lambda_context: Any, rows: Any
) -> None:
    status, answer = post(numeric_app, lambda_context, rows)

    assert 200 <= status < 500, answer


def test_card_sample_is_synthetic_not_a_row_of_the_data(penguins_bundle: Path) -> None:
    card = json.loads((penguins_bundle / "model.json").read_text())
    data = pd.read_csv(ROOT / "examples" / "data" / "penguins.csv")[NAMES]
    records = {tuple(row) for row in data.astype(object).where(data.notna(), None).itertuples(index=False)}

    assert len(card["sample"]["instances"]) == 3
    assert not {tuple(row) for row in card["sample"]["instances"]} & records
    island = card["input"]["features"][0]["values"]
    assert all(row[0] in island for row in card["sample"]["instances"])
