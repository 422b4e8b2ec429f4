"""Triton's and KServe's own clients against `sml serve` on 127.0.0.1: health, metadata, and inference with
JSON and binary tensors, whose outputs equal POST /predict's for the same rows."""

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput

from tests.projects import LocalApi, predict_project, serving
from tests.unit.test_v2_protocol import hostile_cases

ROWS = np.random.default_rng(18).uniform(0, 16, size=(64, 64)).astype(np.float32)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, digits_bundle: Path) -> Iterator[LocalApi]:
    with serving(predict_project(tmp_path_factory.mktemp("v2-serve"), digits_bundle)) as running:
        yield running


@pytest.fixture(scope="module")
def card(digits_bundle: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((digits_bundle / "model.json").read_text())
    return loaded


@pytest.fixture(scope="module")
def predicted(server: LocalApi) -> dict[str, Any]:
    """POST /predict's answer for ROWS: what every v2 answer must equal."""
    status, _, body = server.request("POST", "/predict", json.dumps({"instances": ROWS.tolist()}).encode(),
                                     {"Content-Type": "application/json"})  # fmt: skip
    assert status == 200
    answer: dict[str, Any] = json.loads(body)
    return answer


def texts(labels: Any) -> list[str]:
    """BYTES elements as text: the clients give bytes from binary data and str from JSON."""
    return [label.decode() if isinstance(label, bytes) else label for label in labels]


@pytest.fixture
def triton_client(server: LocalApi) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(server.url.removeprefix("http://"))
    yield client
    client.close()


def test_triton_health_and_metadata(triton_client, card):
    assert triton_client.is_server_live() and triton_client.is_server_ready()
    assert triton_client.is_model_ready(card["name"]) and triton_client.is_model_ready(card["name"], card["version"])
    assert not triton_client.is_model_ready("another-model")
    assert triton_client.get_server_metadata()["extensions"] == ["binary_tensor_data"]
    metadata = triton_client.get_model_metadata(card["name"], card["version"])
    assert (metadata["platform"], metadata["versions"]) == ("onnx_onnxv1", [card["version"]])
    assert metadata["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 64]}]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("batch", [1, 64])
def test_triton_infer_equals_predict(triton_client, card, predicted, binary, batch):
    features = triton.InferInput("features", [batch, 64], "FP32")
    features.set_data_from_numpy(ROWS[:batch], binary_data=binary)
    outputs = [triton.InferRequestedOutput(name, binary_data=binary) for name in ("probabilities", "predictions")]

    result = triton_client.infer(card["name"], [features], outputs=outputs, request_id="triton-1")

    assert result.get_response()["id"] == "triton-1"
    assert np.array_equal(result.as_numpy("probabilities"), np.float32(predicted["probabilities"][:batch]))
    assert texts(result.as_numpy("predictions")) == predicted["predictions"][:batch]


def test_triton_infer_without_outputs_gets_all_binary(triton_client, card, predicted):
    features = triton.InferInput("features", [2, 64], "FP32")
    features.set_data_from_numpy(ROWS[:2])

    result = triton_client.infer(card["name"], [features], model_version=card["version"])

    assert all("binary_data_size" in output["parameters"] for output in result.get_response()["outputs"])
    assert np.array_equal(result.as_numpy("probabilities"), np.float32(predicted["probabilities"][:2]))


def test_triton_client_mistakes_raise_the_servers_message(triton_client, card):
    features = triton.InferInput("features", [1, 63], "FP32")
    features.set_data_from_numpy(ROWS[:1, :63])

    with pytest.raises(triton.InferenceServerException) as raised:
        triton_client.infer(card["name"], [features])

    assert raised.value.status() == "400" and "shape" in raised.value.message()


def kserve_call(method: str, *args: Any, **kwargs: Any) -> Any:
    async def run() -> Any:
        client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=60))
        try:
            return await getattr(client, method)(*args, **kwargs)
        finally:
            await client.close()

    return asyncio.run(run())


def test_kserve_health(server, card):
    assert kserve_call("is_server_live", server.url) is True
    assert kserve_call("is_server_ready", server.url) is True
    assert kserve_call("is_model_ready", server.url, card["name"]) is True
    assert kserve_call("is_model_ready", server.url, "another-model") is False


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("batch", [1, 64])
def test_kserve_infer_equals_predict(server, card, predicted, binary, batch):
    features = InferInput("features", [batch, 64], "FP32")
    features.set_data_from_numpy(ROWS[:batch], binary_data=binary)
    outputs = [RequestedOutput(name, {"binary_data": binary}) for name in ("probabilities", "predictions")]
    request = InferRequest(card["name"], [features], request_id="kserve-1", request_outputs=outputs)

    response = kserve_call("infer", server.url, request, model_name=card["name"])

    assert (response.id, response.model_name) == ("kserve-1", card["name"])  # its parser drops model_version
    probabilities, predictions = response.outputs
    assert np.array_equal(probabilities.as_numpy(), np.float32(predicted["probabilities"][:batch]))
    assert texts(predictions.as_numpy()) == predicted["predictions"][:batch]


@pytest.mark.parametrize("case", list(hostile_cases(ROWS[:3].tolist(), 256)))
def test_hostile_bodies_through_the_gateway_are_documented_4xx(server, card, case):
    body, headers, want_status, word = hostile_cases(ROWS[:3].tolist(), 256)[case]
    content_type = "application/octet-stream" if isinstance(body, bytes) else "application/json"
    data = body if isinstance(body, bytes) else body.encode()

    status, response_headers, answer = server.request(
        "POST", f"/v2/models/{card['name']}/infer", data, headers | {"Content-Type": content_type}
    )

    assert (status, response_headers["Content-Type"]) == (want_status, "application/json")
    assert word in json.loads(answer)["error"]
