"""A categorical model on the v2 routes: each categorical feature a BYTES input named as in the card, JSON or
binary, answered as POST /predict answers the same rows (known, unseen and missing categories), and every
hostile BYTES tensor a documented 400."""

import csv
import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ROOT, read_event
from tests.unit.test_v2_protocol import call, split_binary_answer

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")


def read_card(bundle: Path) -> dict[str, Any]:
    card: dict[str, Any] = json.loads((bundle / "model.json").read_text())
    return card


def penguin_rows(card: dict[str, Any]) -> list[dict[str, Any]]:
    """Four rows of penguins.csv by feature name: known categories, an unseen island, a missing sex, both odd."""
    kinds = {feature["name"]: feature["kind"] for feature in card["input"]["features"]}
    with (ROOT / "examples/data/penguins.csv").open() as file:
        table = [row for row in csv.DictReader(file) if "NA" not in row.values()]
    rows = [{name: value if kinds[name] == "categorical" else float(value) for name, value in row.items()
             if name in kinds} for row in (table[0], table[150], table[300], table[200])]  # fmt: skip
    categorical = [name for name, kind in kinds.items() if kind == "categorical"]
    rows[1][categorical[0]] = "Atlantis"  # never seen in training: the unseen bucket
    rows[2][categorical[-1]] = None  # missing: POST /predict's null, v2's ""
    rows[3] |= {categorical[0]: "", categorical[-1]: "x" * 256}  # missing, and unseen at the length cap
    return rows


def v2_inputs(card: dict[str, Any], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows as v2 JSON tensors: the numbers as `features`, each category as a BYTES input of its name."""
    features = card["input"]["features"]
    numeric = [feature["name"] for feature in features if feature["kind"] == "numeric"]
    inputs = [{"name": "features", "datatype": "FP32", "shape": [len(rows), len(numeric)],
               "data": [[row[name] for name in numeric] for row in rows]}]  # fmt: skip
    return inputs + [{"name": feature["name"], "datatype": "BYTES", "shape": [len(rows)],
                      "data": [row[feature["name"]] or "" for row in rows]}
                     for feature in features if feature["kind"] == "categorical"]  # fmt: skip


def encode_elements(texts: list[str]) -> bytes:
    """BYTES binary data: each element a 4-byte little-endian length, then its UTF-8."""
    return b"".join(struct.pack("<I", len(item)) + item for item in (text.encode() for text in texts))


def binary_request(inputs: list[dict[str, Any]], **extra: Any) -> tuple[bytes, dict[str, str]]:
    """Every input as binary data after the JSON header."""
    blobs, tensors = [], []
    for tensor in inputs:
        data = tensor["data"]
        blob = encode_elements(data) if tensor["datatype"] == "BYTES" else np.asarray(data, "<f4").tobytes()
        blobs.append(blob)
        tensors.append({key: value for key, value in tensor.items() if key != "data"}
                       | {"parameters": {"binary_data_size": len(blob)}})  # fmt: skip
    header = json.dumps({"inputs": tensors, **extra}).encode()
    return header + b"".join(blobs), {"inference-header-content-length": str(len(header))}


@pytest.fixture(scope="module")
def card(penguins_bundle: Path) -> dict[str, Any]:
    return read_card(penguins_bundle)


@pytest.fixture
def app(load_predict_app, penguins_bundle):
    return load_predict_app(penguins_bundle, MAX_BATCH="8")


def predict_answer(app: Any, context: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    response = app.lambda_handler(read_event("predict.json") | {"body": json.dumps({"instances": rows})}, context)
    assert response["statusCode"] == 200, response["body"]
    answer: dict[str, Any] = json.loads(response["body"])
    return answer


def test_metadata_lists_each_categorical_feature_as_bytes(app, lambda_context, card):
    features = card["input"]["features"]
    n_numeric = sum(feature["kind"] == "numeric" for feature in features)

    status, _, body = call(app, lambda_context, "GET", f"/v2/models/{card['name']}")

    assert status == 200
    assert json.loads(body)["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, n_numeric]}] + [
        {"name": feature["name"], "datatype": "BYTES", "shape": [-1]}
        for feature in features
        if feature["kind"] == "categorical"
    ]
    assert n_numeric == 5 and len(features) == 7  # penguins: island and sex are the categories


def test_json_infer_equals_predict_for_known_unseen_and_missing(app, lambda_context, card):
    rows = penguin_rows(card)
    want = predict_answer(app, lambda_context, rows)
    inputs = v2_inputs(card, rows)
    body = json.dumps({"inputs": inputs[::-1], "id": "p-1"})  # inputs in any order

    status, _, answer = call(app, lambda_context, "POST", f"/v2/models/{card['name']}/infer", body)

    assert status == 200, answer
    probabilities, predictions = json.loads(answer)["outputs"]
    assert np.array_equal(np.float32(probabilities["data"]).reshape(4, 3), np.float32(want["probabilities"]))
    assert predictions["data"] == want["predictions"]


def test_binary_infer_equals_predict(app, lambda_context, card):
    rows = penguin_rows(card)
    want = predict_answer(app, lambda_context, rows)
    body, headers = binary_request(v2_inputs(card, rows), parameters={"binary_data_output": True})

    status, answer_headers, answer = call(app, lambda_context, "POST", f"/v2/models/{card['name']}/infer", body,
                                          headers)  # fmt: skip

    assert status == 200, answer
    _, values = split_binary_answer(answer, int(answer_headers["Inference-Header-Content-Length"]))
    assert np.array_equal(values["probabilities"], np.float32(want["probabilities"]))
    assert values["predictions"] == want["predictions"]


def test_openapi_describes_the_bytes_inputs_with_a_sample(app, lambda_context, card):
    status, _, document = call(app, lambda_context, "GET", "/openapi.json")
    assert status == 200
    infer = json.loads(document)["paths"]["/v2/models/{name}/infer"]["post"]["requestBody"]["content"]
    example = infer["application/json"]["example"]

    status, _, answer = call(app, lambda_context, "POST", f"/v2/models/{card['name']}/infer", json.dumps(example))

    assert [tensor["datatype"] for tensor in example["inputs"]] == ["FP32", "BYTES", "BYTES"]
    assert status == 200, answer


def hostile_bytes_cases(card: dict[str, Any]) -> dict[str, tuple[bytes | str, dict[str, str], str]]:
    """Body, headers and a word of the 400's error for each hostile BYTES request (three rows)."""
    inputs = v2_inputs(card, penguin_rows(card)[:3])
    name = inputs[1]["name"]

    def changed(**fields: Any) -> str:
        return json.dumps({"inputs": [inputs[0], inputs[1] | fields, *inputs[2:]]})

    good, headers = binary_request(inputs)
    header_length = int(headers["inference-header-content-length"])
    head, blobs = good[:header_length], good[header_length:]
    numbers = len(np.asarray(inputs[0]["data"], "<f4").tobytes())
    island = encode_elements(inputs[1]["data"])

    def with_island(blob: bytes) -> tuple[bytes, dict[str, str]]:
        document = json.loads(head)
        document["inputs"][1]["parameters"]["binary_data_size"] = len(blob)
        text = json.dumps(document).encode()
        rest = blobs[numbers + len(island) :]
        return text + blobs[:numbers] + blob + rest, {"inference-header-content-length": str(len(text))}

    return {
        "bytes as FP32": (changed(datatype="FP32"), {}, "BYTES"),
        "numbers in a BYTES input": (changed(data=[1, 2, 3]), {}, "strings"),
        "null in a BYTES input": (changed(data=[None, "Dream", "Biscoe"]), {}, "strings"),
        "nested BYTES data": (changed(data=[["Dream"], ["Biscoe"], ["Dream"]]), {}, "strings"),
        "fewer categories than rows": (changed(data=["Dream", "Biscoe"]), {}, "strings"),
        "shape other than the rows": (changed(shape=[2]), {}, "shape"),
        "shape [rows, 1]": (changed(shape=[3, 1]), {}, "shape"),
        "category over the cap": (changed(data=["x" * 257, "Dream", "Dream"]), {}, "257"),
        "no data": (
            json.dumps({"inputs": [inputs[0], {"name": name, "datatype": "BYTES", "shape": [3]}, *inputs[2:]]}),
            {},
            "strings",
        ),
        "a categorical input left out": (json.dumps({"inputs": [inputs[0], inputs[1]]}), {}, "inputs"),
        "features as BYTES": (json.dumps({"inputs": [inputs[0] | {"datatype": "BYTES"}, *inputs[1:]]}), {}, "FP32"),
        "binary length past the data": (*with_island(island[:-1]), "runs past"),
        "binary data ends inside a length": (
            *with_island(encode_elements(inputs[1]["data"][:2]) + b"\1\0"),
            "ends before",
        ),
        "binary data short of the rows": (*with_island(island[: 4 + len(inputs[1]["data"][0])]), "ends before"),
        "binary bytes beyond the elements": (*with_island(island + b"\0"), "beyond"),
        "binary text not UTF-8": (*with_island(encode_elements(["Dream", "Dream"]) + b"\2\0\0\0\xff\xfe"), "UTF-8"),
        "binary category over the cap": (*with_island(encode_elements(["é" * 257, "Dream", "Dream"])), "257"),
    }


CASES = [
    "bytes as FP32", "numbers in a BYTES input", "null in a BYTES input", "nested BYTES data",
    "fewer categories than rows", "shape other than the rows", "shape [rows, 1]", "category over the cap", "no data",
    "a categorical input left out", "features as BYTES", "binary length past the data",
    "binary data ends inside a length", "binary data short of the rows", "binary bytes beyond the elements",
    "binary text not UTF-8", "binary category over the cap",
]  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_hostile_bytes_are_documented_400s(app, lambda_context, card, case):
    body, headers, word = hostile_bytes_cases(card)[case]

    status, response_headers, answer = call(app, lambda_context, "POST", f"/v2/models/{card['name']}/infer", body,
                                            headers)  # fmt: skip

    assert (status, response_headers["Content-Type"]) == (400, "application/json")
    assert word in json.loads(answer)["error"]


def test_the_table_names_every_case(card):
    assert list(hostile_bytes_cases(card)) == CASES


TEXTS = st.text(max_size=6) | st.sampled_from(["", "Dream", "Biscoe", "x" * 257]) | st.integers() | st.none()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), binary=st.booleans(), tail=st.binary(max_size=12))
def test_no_bytes_tensor_gets_a_5xx(app, lambda_context, card, data, binary, tail):
    inputs = v2_inputs(card, penguin_rows(card)[:2])
    for tensor in inputs[1:]:
        tensor["data"] = data.draw(st.lists(TEXTS, max_size=3) | TEXTS)
        tensor["shape"] = data.draw(st.sampled_from([[2], [1], [2, 1], [-1], []]))
        tensor["datatype"] = data.draw(st.sampled_from(["BYTES", "BYTES", "FP32"]))
    headers: dict[str, str] = {}
    body: bytes = json.dumps({"inputs": inputs}).encode()
    if binary:
        document = {"inputs": [inputs[0], *(tensor | {"parameters": {"binary_data_size": 0}} for tensor in inputs[1:])]}
        blobs = [data.draw(st.binary(max_size=24)) for _ in inputs[1:]]
        for tensor, blob in zip(document["inputs"][1:], blobs, strict=True):
            tensor["parameters"]["binary_data_size"] = len(blob)
        header = json.dumps(document).encode()
        body, headers = header + b"".join(blobs) + tail, {"inference-header-content-length": str(len(header))}

    status, _, answer = call(app, lambda_context, "POST", f"/v2/models/{card['name']}/infer", body, headers)

    assert status == 200 or (400 <= status < 500 and isinstance(json.loads(answer)["error"], str)), answer
