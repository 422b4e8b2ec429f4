"""The cold start of a sealed model (`sml promote --kms-key`): the digits function with model.onnx.enc, its
data key unwrapped at init by moto's KMS on 127.0.0.1.

Against moto on this machine the KMS call costs a loopback round trip to moto's Python server; in Lambda,
Decrypt is an in-region HTTPS call (plus a TLS handshake on a cold start), so the row names where KMS ran.
Most of the difference is importing boto3 and building its KMS client, which a plain model never does.
"""

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3

from benchmarks.serving_report import median_ms, paired_ratio, row
from scripts.moto_server import FAKE_CREDENTIALS, moto_server
from sml.seal import seal

CONTENDER = "ours sealed (KMS: moto on 127.0.0.1)"


@contextmanager
def sealed_function(function: Path, work: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A copy of `function` whose model is sealed with a key in a moto server that runs while the block does;
    yields the copy and the variables that point the function's boto3 at that server."""
    copy = work / "function-sealed"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(function, copy)
    with moto_server() as url:
        kms = boto3.client(
            "kms",
            endpoint_url=url,
            region_name=FAKE_CREDENTIALS["AWS_REGION"],
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
        key = kms.create_key(Description="benchmarks/serving.py")["KeyMetadata"]["Arn"]
        seal(copy / "model", json.loads((copy / "model" / "model.json").read_text()), key, kms)
        yield copy, {**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": url}


def sealed_row(cold: dict[tuple[str, str], list[float]], model: str) -> str:
    """The sealed cold start next to the plain one (`ours`), as the median of each round's ratio."""
    sealed, plain = cold[model, CONTENDER], cold[model, "ours"]
    ratio = paired_ratio(sealed, plain)
    return row(f"{model} cold start, {CONTENDER}, vs plain model", median_ms(sealed), median_ms(plain), "ms",
               f"+{median_ms(sealed) - median_ms(plain):,.0f} ms", None, ratio)  # fmt: skip
