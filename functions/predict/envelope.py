"""Open a model that `sml promote --kms-key` sealed: one KMS Decrypt of its data key, AES-GCM in memory.

Imported by model.py only when the bundle holds model.onnx.enc, so a plain bundle's cold start imports
neither boto3 nor cryptography. The plaintext never touches the disk: onnxruntime takes it as bytes.
The file layout is in docs/bundle-contract.md ("Encrypted model").
"""

import base64
import binascii
import json
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from contract import CARD_FILE, ENCRYPTED_FILE, KEY_FILE, BundleError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# Twins of sml/seal.py's (sml never imports the function); tests/unit/test_envelope.py holds them equal.
ENVELOPE_FORMAT = "serverless-ml.envelope/1"
ALGORITHM = "AES-256-GCM"
NONCE_BYTES = 12


def encryption_context(card: dict[str, Any]) -> dict[str, str]:
    """What KMS binds the data key to, and the AES-GCM associated data: the model's name and plaintext sha256."""
    return {"model": card["name"], "sha256": card["sha256"]}


def associated_data(context: dict[str, str]) -> bytes:
    return json.dumps(context, sort_keys=True, separators=(",", ":")).encode()


def open_model(model_dir: Path, card: dict[str, Any]) -> bytes:
    """The plaintext model.onnx; its sha256 is checked by the caller, against the card.

    Raises:
        BundleError: the key file is malformed, KMS refuses the data key (wrong key, context or permission),
            or the ciphertext fails its authentication tag (tampered, or sealed for another card).
    """
    envelope = read_envelope(model_dir / KEY_FILE)
    try:
        ciphertext = (model_dir / ENCRYPTED_FILE).read_bytes()
    except OSError as error:
        raise BundleError(f"cannot read {ENCRYPTED_FILE}: {error.strerror}; promote the bundle again") from None
    context = encryption_context(card)
    data_key = decrypt_data_key(envelope, context)
    try:
        return AESGCM(data_key).decrypt(envelope["nonce"], ciphertext, associated_data(context))
    except InvalidTag:
        raise BundleError(
            f"{ENCRYPTED_FILE} fails its AES-GCM check: it or {KEY_FILE} changed after `sml promote --kms-key`, "
            f"or {CARD_FILE} is not the card it was sealed with; promote the bundle again"
        ) from None


def read_envelope(path: Path) -> dict[str, Any]:
    """model.key.json: format, algorithm, key_id, the wrapped data key and the nonce (base64)."""
    try:
        envelope = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise BundleError(f"{ENCRYPTED_FILE} needs {KEY_FILE} beside it: {error.strerror}") from None
    except ValueError:
        raise BundleError(f"{KEY_FILE} is not valid JSON; promote the bundle again") from None
    if not isinstance(envelope, dict) or envelope.get("format") != ENVELOPE_FORMAT:
        raise BundleError(f"{KEY_FILE}: format must be {ENVELOPE_FORMAT!r}")
    if envelope.get("algorithm") != ALGORITHM or not isinstance(envelope.get("key_id"), str):
        raise BundleError(f"{KEY_FILE}: algorithm must be {ALGORITHM!r} and key_id the KMS key's ARN")
    try:
        wrapped = base64.b64decode(envelope["wrapped_key"], validate=True)
        nonce = base64.b64decode(envelope["nonce"], validate=True)
    except (KeyError, TypeError, binascii.Error):
        raise BundleError(f"{KEY_FILE}: wrapped_key and nonce must be base64") from None
    if len(nonce) != NONCE_BYTES or not wrapped:
        raise BundleError(f"{KEY_FILE}: the nonce must be {NONCE_BYTES} bytes and wrapped_key not empty")
    return {"key_id": envelope["key_id"], "wrapped_key": wrapped, "nonce": nonce}


def decrypt_data_key(envelope: dict[str, Any], context: dict[str, str]) -> bytes:
    """One KMS Decrypt, pinned to the key that sealed the model, under the card's encryption context."""
    try:
        answer = boto3.client("kms").decrypt(
            CiphertextBlob=envelope["wrapped_key"], KeyId=envelope["key_id"], EncryptionContext=context
        )
    except ClientError as error:
        details = error.response.get("Error", {})
        raise BundleError(
            f"KMS refused to decrypt {ENCRYPTED_FILE}'s data key with {envelope['key_id']} "
            f"({details.get('Code', 'error')}: {details.get('Message', '')}): the key is wrong, disabled or "
            f"not the function's to use, or {CARD_FILE}'s model name or sha256 is not the one it was sealed for"
        ) from None
    except BotoCoreError as error:
        raise BundleError(f"cannot reach KMS to decrypt {ENCRYPTED_FILE}'s data key: {error}") from None
    return bytes(answer["Plaintext"])
