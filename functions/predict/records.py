"""Rows keyed by feature name, and models with categorical inputs: from `instances` to the graph's inputs.

Imported only for a model whose card lists categorical features (model.load) or for a request that sends
rows as objects: a numeric model sent positional rows never loads it (predict.parse_instances is that path).
A row is a list of values in the card's feature order or an object keyed by feature name; a categorical
value is a string (null or "" is the missing bucket, an unknown string the unseen one), a numeric value a
number. Anything else is a 422 that names the instance and the feature. The rules, in words, are in
docs/bundle-contract.md.
"""

import json
from collections.abc import Callable, Mapping, Sequence
from itertools import chain
from operator import itemgetter
from typing import Any, NamedTuple

import numpy as np
from contract import CARD_FILE, CATEGORIES_INPUT, BundleError, shown
from predict import ApiError

# A missing category's text, as the graph's LabelEncoder maps it. Twin: training/data/categories.py MISSING.
MISSING = ""
# The longest category a request may send. Twin: training/data/categories.py MAX_CATEGORY_CHARS.
MAX_CATEGORY_CHARS = 256
KINDS = ("numeric", "categorical")


class Schema(NamedTuple):
    """The features of one row, in card order, and where each kind goes in the graph's inputs."""

    names: tuple[str, ...]
    categorical: tuple[bool, ...]  # per feature
    keys: frozenset[str]  # the names, for checking an object's keys at once
    values: Callable[[dict[str, Any]], tuple[Any, ...]]  # an object's values in card order
    n_numeric: int


def make_schema(names: Sequence[str], categorical: Sequence[bool]) -> Schema:
    values = itemgetter(*names) if len(names) > 1 else lambda instance: (instance[names[0]],)
    return Schema(tuple(names), tuple(categorical), frozenset(names), values, len(names) - sum(categorical))


def read_schema(spec: Mapping[str, Any], n_numeric: int) -> Schema:
    """input.features of a card whose float input has `n_numeric` columns, or BundleError."""
    features = spec.get("features")
    if not isinstance(features, list) or not features:
        raise BundleError(f"{CARD_FILE}: input.features must be a non-empty list of {{name, kind}} objects")
    for at, feature in enumerate(features):
        if not (isinstance(feature, dict) and isinstance(feature.get("name"), str) and feature.get("kind") in KINDS):
            raise BundleError(f"{CARD_FILE}: input.features[{at}] must be {{name, kind: numeric|categorical}}")
        values = feature.get("values")
        if feature["kind"] == "categorical" and not (
            isinstance(values, list)
            and all(isinstance(value, str) and 0 < len(value) <= MAX_CATEGORY_CHARS for value in values)
            and len(set(values)) == len(values)
        ):
            raise BundleError(
                f"{CARD_FILE}: input.features[{at}].values must list distinct strings of 1-{MAX_CATEGORY_CHARS} "
                "characters"
            )
    names = tuple(feature["name"] for feature in features)
    if len(set(names)) != len(names):
        raise BundleError(f"{CARD_FILE}: input.features names a feature twice")
    if spec.get("feature_names") not in (None, list(names)):
        raise BundleError(f"{CARD_FILE}: input.feature_names must list input.features' names, in their order")
    categorical = tuple(feature["kind"] == "categorical" for feature in features)
    if len(names) - sum(categorical) != n_numeric:
        raise BundleError(
            f"{CARD_FILE}: input.features has {len(names) - sum(categorical)} numeric features but input.shape "
            f"{shown(spec.get('shape'))} has {n_numeric} columns"
        )
    return make_schema(names, categorical)


def check_categories_shape(shape: list[Any], schema: Schema) -> None:
    columns = sum(schema.categorical)
    if len(shape) != 2 or shape[1] != columns or isinstance(shape[0], int):
        raise BundleError(f"model.onnx input {CATEGORIES_INPUT!r} has shape {shape}, not [batch, {columns}]")


def sample_inputs(schema: Schema, instances: Any) -> tuple[np.ndarray, np.ndarray]:
    """The card's sample rows through the parser requests go through: what promote accepts, requests may send."""
    if not isinstance(instances, list):
        raise BundleError("model.json: sample.instances must be a list of rows")
    try:
        return parse_rows(None, instances, schema, len(instances))
    except ApiError as error:
        raise BundleError(f"model.json: sample.instances: {error.message}") from None


def numeric_schema(names: Sequence[str]) -> Schema:
    return make_schema(names, [False] * len(names))


def named_numbers(body: bytes | str, instances: list[Any], names: Sequence[str], max_batch: int) -> np.ndarray:
    """A numeric model's rows sent as objects: float32 (rows, features)."""
    if not names:
        raise ApiError(422, "invalid_instances", "this model's card names no features: send rows as lists of numbers")
    features, _ = parse_rows(body, instances, numeric_schema(names), max_batch)
    return features


NUMBERS, TEXTS = {int, float}, {str, type(None)}  # bool is an int subclass, and no number: its type is bool


def parse_rows(
    body: bytes | str | None, instances: list[Any], schema: Schema, max_batch: int
) -> tuple[np.ndarray, np.ndarray]:
    """The graph's inputs for `instances`: float32 (rows, numeric features) and str (rows, categorical ones).

    `body` is the request's text, checked for an object naming a key twice (None: not a request). The
    values are checked a column at a time, by the set of their types: per value in Python, a batch of 64
    rows of 64 features would cost ten times the model.
    """
    if len(instances) > max_batch:
        raise ApiError(413, "batch_too_large", f"at most {max_batch} instances per request, got {len(instances)}")
    ordered = [in_order(instance, schema, row) for row, instance in enumerate(instances)]
    if body is not None and any(type(instance) is dict for instance in instances):
        refuse_duplicate_keys(body, instances)
    if schema.n_numeric == len(schema.names) and set(map(type, chain.from_iterable(ordered))) <= NUMBERS:
        return finite(np.array(ordered, dtype=np.float64)), np.empty((len(instances), 0), dtype=object)
    numbers, texts = [], []
    for at, column in enumerate(zip(*ordered, strict=True)):
        kinds = set(map(type, column))
        if not schema.categorical[at]:
            if not kinds <= NUMBERS:
                raise first_wrong(ordered, at, schema)
            numbers.append(column)
            continue
        if not kinds <= TEXTS or max(map(len, filter(None, column)), default=0) > MAX_CATEGORY_CHARS:
            raise first_wrong(ordered, at, schema)
        texts.append([MISSING if value is None else value for value in column] if type(None) in kinds else column)
    features = finite(np.array(numbers, dtype=np.float64).T.reshape(len(instances), -1))
    return features, np.array(texts, dtype=object).T.reshape(len(instances), -1)


def finite(numbers: np.ndarray) -> np.ndarray:
    """float64 values as float32, or a 422 for the first row with one beyond float32's range."""
    with np.errstate(over="ignore"):
        features = numbers.astype(np.float32)
    if not np.isfinite(features).all():
        row = int(np.argmin(np.isfinite(features).all(axis=1)))
        raise ApiError(422, "non_finite", f"instance {row} holds a value that is not a finite float32 number")
    return features


def in_order(instance: Any, schema: Schema, row: int) -> Sequence[Any]:
    """One row's values in card order, from a list or an object keyed by feature name."""
    if type(instance) is list:
        if len(instance) != len(schema.names):
            raise ApiError(
                422,
                "invalid_instances",
                f"instance {row} has {len(instance)} values; this model takes {len(schema.names)}, in this order: "
                f"{', '.join(schema.names)}",
            )
        return instance
    if type(instance) is not dict:
        raise ApiError(
            422, "invalid_instances", f"instance {row} must be a list of values or an object by feature name"
        )
    if instance.keys() != schema.keys:
        for key in instance:
            if key not in schema.keys:
                raise wrong(row, key, f"is not a feature of this model; its features are {', '.join(schema.names)}")
        missing = next(name for name in schema.names if name not in instance)
        raise wrong(row, missing, "is missing; send every feature (null for a missing category)")
    return schema.values(instance)


def first_wrong(ordered: list[Sequence[Any]], at: int, schema: Schema) -> ApiError:
    """The refusal of the first value in column `at` that is not of its feature's kind."""
    name = schema.names[at]
    for row, values in enumerate(ordered):
        value = values[at]
        if schema.categorical[at]:
            if value is not None and type(value) is not str:
                return wrong(row, name, f"is categorical: send a string (or null when missing), got {shown(value)}")
            if value is not None and len(value) > MAX_CATEGORY_CHARS:
                return wrong(row, name, f"is a text of {len(value)} characters; a category has at most "
                                        f"{MAX_CATEGORY_CHARS}")  # fmt: skip
        elif type(value) not in NUMBERS:
            return wrong(row, name, f"is numeric: send a number, got {shown(value)}")
    raise AssertionError(f"column {name!r} holds no wrong value")  # the caller saw one


def wrong(row: int, name: str, problem: str) -> ApiError:
    return ApiError(422, "invalid_instances", f"instance {row}: feature {shown(name)} {problem}")


def refuse_duplicate_keys(body: bytes | str, instances: list[Any]) -> None:
    """A row object that names a feature twice is refused: which value was meant is the client's bug to fix.

    Each key is followed by a colon, so a body with no more colons than the parsed objects hold keys
    (the top level's one, `instances`, and each row's) names no key twice; only another body, whose
    strings hold colons or whose objects nest, is parsed again, key by key.
    """
    colons = body.count(":") if isinstance(body, str) else body.count(b":")
    if colons <= 1 + sum(len(instance) for instance in instances if type(instance) is dict):
        return
    try:
        json.loads(body, object_pairs_hook=unique_keys)
    except RecursionError:  # orjson took it, the standard library's parser does not: deep, but no object twice
        return


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        twice = next(key for key in keys if keys.count(key) > 1)
        raise ApiError(422, "duplicate_key", f"an object in the body names {shown(twice)} twice; name each key once")
    return dict(pairs)
