"""`sml promote --kms-key`: the model sealed with a key in moto's KMS, served by `sml invoke`/`sml serve`, and
refused (503 model_unavailable, with the reason) when the key, the card or the file is not the one it was sealed with.
"""

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import onnxruntime as ort
import pytest

from tests.aws.stack import (
    STACK_NAME,
    FakeStack,
    create_output_stack,
    fixture_aws_stack,  # noqa: F401  (a fixture)
)
from tests.projects import serving

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"


@pytest.fixture(name="sealed")
def fixture_sealed(aws_stack: FakeStack, digits_bundle: Path) -> tuple[FakeStack, str]:
    """The project with template.yaml and digits_bundle promoted sealed with a new KMS key; the key's ARN."""
    key = boto3.client("kms").create_key(Description="serverless-ml test")["KeyMetadata"]["Arn"]
    shutil.copyfile(ROOT / "template.yaml", aws_stack.project / "template.yaml")
    result = aws_stack.sml("promote", str(digits_bundle), "--kms-key", key)
    assert result.returncode == 0, result.stderr
    assert f"  sealed: model.onnx.enc with KMS key {key}; no plaintext model ships\n" in result.stdout
    return aws_stack, key


def invoke(stack: FakeStack, event: str) -> tuple[int, dict[str, Any]]:
    result = stack.sml("invoke", "PredictFunction", "-e", str(EVENTS / event))
    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout)
    return response["statusCode"], json.loads(response["body"])


def model_dir(stack: FakeStack) -> Path:
    return stack.project / "functions" / "predict" / "model"


def probabilities(bundle: Path, instances: list[list[float]]) -> np.ndarray:
    session = ort.InferenceSession(bundle / "model.onnx", providers=["CPUExecutionProvider"])
    (answer,) = session.run(["probabilities"], {"features": np.asarray(instances, dtype=np.float32)})
    return np.asarray(answer)


def test_promote_seals_the_model_and_ships_no_plaintext(sealed: tuple[FakeStack, str], digits_bundle: Path) -> None:
    stack, key = sealed
    plaintext = (digits_bundle / "model.onnx").read_bytes()

    files = stack.model_files()

    assert sorted(files) == ["model.json", "model.key.json", "model.onnx.enc"]
    assert files["model.json"] == (digits_bundle / "model.json").read_bytes()  # its sha256 is the plaintext's
    assert len(files["model.onnx.enc"]) == len(plaintext) + 16  # AES-GCM: the ciphertext and its 16-byte tag
    assert plaintext[:256] not in files["model.onnx.enc"]
    envelope = json.loads(files["model.key.json"])
    card = json.loads(files["model.json"])
    assert (envelope["format"], envelope["algorithm"], envelope["key_id"]) == (
        "serverless-ml.envelope/1",
        "AES-256-GCM",
        key,
    )
    assert envelope["encryption_context"] == {"model": card["name"], "sha256": card["sha256"]}


def test_sml_invoke_serves_the_sealed_model(sealed: tuple[FakeStack, str], digits_bundle: Path) -> None:
    stack, _ = sealed
    event = json.loads((EVENTS / "predict.json").read_text())

    status, body = invoke(stack, "predict.json")

    assert status == 200, body
    instances = json.loads(event["body"])["instances"]
    np.testing.assert_allclose(body["probabilities"], probabilities(digits_bundle, instances), rtol=1e-6)
    assert invoke(stack, "health.json")[0] == 200


def test_sml_serve_serves_the_sealed_model(sealed: tuple[FakeStack, str]) -> None:
    stack, _ = sealed
    body = json.loads((EVENTS / "predict.json").read_text())["body"].encode()

    with serving(stack.project) as api:
        health, _, _ = api.request("GET", "/health")
        status, _, answer = api.request("POST", "/predict", body, {"content-type": "application/json"})

    assert (health, status) == (200, 200), answer
    assert len(json.loads(answer)["probabilities"]) == len(json.loads(body)["instances"])


def assert_unavailable(stack: FakeStack, *reasons: str) -> None:
    status, body = invoke(stack, "health.json")
    assert status == 503
    assert body["error"]["code"] == "model_unavailable"
    for reason in reasons:
        assert reason in body["error"]["message"], body


def test_another_key_makes_the_model_unavailable(sealed: tuple[FakeStack, str]) -> None:
    stack, _ = sealed
    other = boto3.client("kms").create_key(Description="not the sealing key")["KeyMetadata"]["Arn"]
    key_file = model_dir(stack) / "model.key.json"
    key_file.write_text(json.dumps({**json.loads(key_file.read_text()), "key_id": other}))

    assert_unavailable(stack, f"KMS refused to decrypt model.onnx.enc's data key with {other}", "AccessDenied")


def test_a_card_naming_another_model_makes_the_model_unavailable(sealed: tuple[FakeStack, str]) -> None:
    stack, _ = sealed
    card_path = model_dir(stack) / "model.json"
    card = json.loads(card_path.read_text())
    card_path.write_text(json.dumps({**card, "name": "another-model"}))  # the encryption context changes with it

    assert_unavailable(stack, "KMS refused to decrypt model.onnx.enc's data key", "InvalidCiphertextException")


def test_a_tampered_model_makes_the_model_unavailable(sealed: tuple[FakeStack, str]) -> None:
    stack, _ = sealed
    path = model_dir(stack) / "model.onnx.enc"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))

    assert_unavailable(stack, "model.onnx.enc fails its AES-GCM check")


def test_a_plaintext_model_beside_the_sealed_one_is_refused(sealed: tuple[FakeStack, str], digits_bundle: Path) -> None:
    stack, _ = sealed
    shutil.copyfile(digits_bundle / "model.onnx", model_dir(stack) / "model.onnx")

    assert_unavailable(stack, "model.onnx ships beside model.onnx.enc: a sealed bundle holds no plaintext model")


def test_promote_refuses_a_key_kms_does_not_know(aws_stack: FakeStack, digits_bundle: Path) -> None:
    result = aws_stack.sml("promote", str(digits_bundle), "--kms-key", "alias/no-such-key")

    assert result.returncode == 2
    assert result.stderr.startswith(
        "sml: error: --kms-key alias/no-such-key: KMS refused a data key (NotFoundException"
    )
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert aws_stack.model_files() == aws_stack.initial_model


def test_promote_seals_with_the_stacks_own_key(aws_stack: FakeStack, digits_bundle: Path) -> None:
    # A stack deployed with CreateKmsKey=true names its key in the ModelKeyArn output; `--kms-key stack` reads it.
    key = boto3.client("kms").create_key(Description="the stack's key")["KeyMetadata"]["Arn"]
    stack_name = f"promote-with-a-key-{uuid.uuid4().hex[:8]}"  # moto's account outlives the test
    create_output_stack(aws_stack.account, stack_name, {"ModelKeyArn": key})

    result = aws_stack.sml("promote", str(digits_bundle), "--kms-key", "stack", "--stack-name", stack_name)

    assert result.returncode == 0, result.stderr
    assert f"  sealed: model.onnx.enc with KMS key {key}; no plaintext model ships\n" in result.stdout
    assert json.loads(aws_stack.model_files()["model.key.json"])["key_id"] == key


def test_promote_with_the_stacks_key_needs_a_stack_that_has_one(aws_stack: FakeStack, digits_bundle: Path) -> None:
    result = aws_stack.sml("promote", str(digits_bundle), "--kms-key", "stack")

    assert result.returncode == 2
    assert result.stderr == (
        f"sml: error: stack {STACK_NAME!r} has no output ModelKeyArn (deployed without CreateKmsKey=true or "
        "KmsKeyArn); pass --kms-key KEY\n"
    )
    assert aws_stack.model_files() == aws_stack.initial_model


def test_promoting_a_plain_bundle_over_a_sealed_one_removes_the_sealed_files(
    sealed: tuple[FakeStack, str], tiny_bundle: Path
) -> None:
    stack, _ = sealed

    result = stack.sml("promote", str(tiny_bundle))

    assert result.returncode == 0, result.stderr
    assert stack.model_files() == stack.initial_model  # tiny_bundle's files, none of the sealed ones
