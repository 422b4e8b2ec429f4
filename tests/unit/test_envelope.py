"""The sealed model's envelope: sml/seal.py writes what functions/predict/envelope.py reads (twins held equal),
and a malformed model.key.json is refused with its reason before any KMS call."""

import importlib
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import sml.bundle
from sml import seal
from tests.conftest import FUNCTION_DIR, drop_predict_modules

CARD = {"name": "digits", "sha256": "ab" * 32}
GOOD = {
    "format": "serverless-ml.envelope/1",
    "algorithm": "AES-256-GCM",
    "key_id": "arn:aws:kms:us-east-1:123456789012:key/0a1b",
    "wrapped_key": "AQID",
    "nonce": "AAAAAAAAAAAAAAAA",
}


@pytest.fixture(name="function")
def fixture_function(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ModuleType, ModuleType]]:
    """The function's envelope and contract modules, imported as Lambda does (its folder first on sys.path)."""
    monkeypatch.syspath_prepend(str(FUNCTION_DIR))
    drop_predict_modules()
    yield importlib.import_module("envelope"), importlib.import_module("contract")
    drop_predict_modules()


def test_the_envelope_twins_are_equal(function: tuple[ModuleType, ModuleType]) -> None:
    envelope, contract = function
    context = seal.encryption_context(CARD)

    assert (seal.ENVELOPE_FORMAT, seal.ALGORITHM, seal.NONCE_BYTES) == (
        envelope.ENVELOPE_FORMAT,
        envelope.ALGORITHM,
        envelope.NONCE_BYTES,
    )
    assert (sml.bundle.ENCRYPTED_FILE, sml.bundle.KEY_FILE) == (contract.ENCRYPTED_FILE, contract.KEY_FILE)
    assert context == envelope.encryption_context(CARD) == {"model": "digits", "sha256": "ab" * 32}
    assert seal.associated_data(context) == envelope.associated_data(context)


# case -> (model.key.json's text, what the refusal says)
MALFORMED = {
    "not JSON": ("{", "model.key.json is not valid JSON"),
    "another format": (json.dumps({**GOOD, "format": "other/1"}), "format must be 'serverless-ml.envelope/1'"),
    "another algorithm": (json.dumps({**GOOD, "algorithm": "AES-128-CBC"}), "algorithm must be 'AES-256-GCM'"),
    "no key id": (json.dumps({k: v for k, v in GOOD.items() if k != "key_id"}), "key_id the KMS key's ARN"),
    "nonce not base64": (json.dumps({**GOOD, "nonce": "not base64!"}), "wrapped_key and nonce must be base64"),
    "short nonce": (json.dumps({**GOOD, "nonce": "AAAA"}), "the nonce must be 12 bytes"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_key_file_is_refused_with_its_reason(
    function: tuple[ModuleType, ModuleType], tmp_path: Path, case: str
) -> None:
    envelope, contract = function
    text, reason = MALFORMED[case]
    (tmp_path / "model.key.json").write_text(text)
    (tmp_path / "model.onnx.enc").write_bytes(b"\0" * 32)

    with pytest.raises(contract.BundleError, match=re.escape(reason)):
        envelope.open_model(tmp_path, CARD)


def test_a_sealed_model_without_its_key_file_is_refused(
    function: tuple[ModuleType, ModuleType], tmp_path: Path
) -> None:
    envelope, contract = function
    (tmp_path / "model.onnx.enc").write_bytes(b"\0" * 32)

    with pytest.raises(contract.BundleError, match=re.escape("model.onnx.enc needs model.key.json beside it")):
        envelope.open_model(tmp_path, CARD)


@pytest.mark.parametrize("name", ["model.onnx.enc", "model.key.json"])
def test_a_sealed_file_that_is_a_link_is_refused_before_any_kms_call(
    function: tuple[ModuleType, ModuleType], tmp_path: Path, tiny_bundle: Path, name: str
) -> None:
    _, contract = function
    model = importlib.import_module("model")
    shutil.copyfile(tiny_bundle / "model.json", tmp_path / "model.json")
    (tmp_path / "model.key.json").write_text(json.dumps(GOOD))
    (tmp_path / "model.onnx.enc").write_bytes(b"\0" * 32)
    (tmp_path / name).unlink()
    (tmp_path / name).symlink_to(tiny_bundle / "model.json")

    with pytest.raises(contract.BundleError, match=re.escape(f"{tmp_path / name} is a symbolic link")):
        model.load(tmp_path)
