"""`sml promote --kms-key`: envelope-encrypt model.onnx with a data key from the user's KMS key.

KMS returns a fresh AES-256 data key twice, in plaintext and wrapped under KEY bound to an encryption
context naming the model; the model is encrypted with AES-GCM in memory and only the wrapped key is kept.
The function (functions/predict/envelope.py) has KMS unwrap it once at init. Layout: docs/bundle-contract.md.
"""

import base64
import json
import os
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sml.bundle import ENCRYPTED_FILE, INT8_FILE, KEY_FILE, MODEL_FILE
from sml.errors import UserError

# Twins of functions/predict/envelope.py's (sml never imports the function); tests/unit/test_envelope.py holds
# them equal.
ENVELOPE_FORMAT = "serverless-ml.envelope/1"
ALGORITHM = "AES-256-GCM"
NONCE_BYTES = 12


def encryption_context(card: dict[str, Any]) -> dict[str, str]:
    """The model's name and plaintext sha256: KMS binds the data key to them, AES-GCM authenticates them."""
    return {"model": card["name"], "sha256": card["sha256"]}


def associated_data(context: dict[str, str]) -> bytes:
    return json.dumps(context, sort_keys=True, separators=(",", ":")).encode()


def seal(bundle: Path, card: dict[str, Any], key_id: str, kms: Any) -> str:
    """Replace `bundle`'s model.onnx by model.onnx.enc and model.key.json, drop model.int8.onnx (plaintext
    weights too), with a data key from `kms` (a boto3 KMS client); returns the ARN of the key KMS used.

    Raises:
        UserError: KMS refused the key (missing, disabled, not yours to use); its words, and what to check.
    """
    context = encryption_context(card)
    try:
        data_key = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext=context)
    except ClientError as error:
        details = error.response.get("Error", {})
        raise UserError(
            f"--kms-key {key_id}: KMS refused a data key ({details.get('Code')}: {details.get('Message')}); "
            "pass a symmetric key's id, ARN or alias that you may kms:GenerateDataKey with"
        ) from None
    nonce = os.urandom(NONCE_BYTES)
    plaintext = (bundle / MODEL_FILE).read_bytes()
    ciphertext = AESGCM(bytes(data_key["Plaintext"])).encrypt(nonce, plaintext, associated_data(context))
    envelope = {
        "format": ENVELOPE_FORMAT,
        "algorithm": ALGORITHM,
        "key_id": data_key["KeyId"],
        "encryption_context": context,
        "wrapped_key": base64.b64encode(data_key["CiphertextBlob"]).decode(),
        "nonce": base64.b64encode(nonce).decode(),
    }
    (bundle / ENCRYPTED_FILE).write_bytes(ciphertext)
    (bundle / KEY_FILE).write_text(json.dumps(envelope, indent=2) + "\n", encoding="utf-8")
    (bundle / MODEL_FILE).unlink()
    (bundle / INT8_FILE).unlink(missing_ok=True)
    return str(data_key["KeyId"])
