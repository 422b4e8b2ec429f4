"""`sml promote s3://...`: download a bundle a training job wrote, check S3's checksums and the card, then place it."""

import base64
import hashlib
import io
import secrets
import subprocess
import tarfile
from pathlib import Path

import boto3

from tests.aws.stack import (
    BUCKET,
    FakeStack,
    fixture_aws_stack,  # noqa: F401  (a fixture)
)


def upload(files: dict[str, bytes], wrong_checksum: str | None = None) -> str:
    """Put files under a new job's prefix as the training job does: SHA-256 checksums stored by S3, model.json last."""
    prefix = f"bundles/digits-20261129-153000-{secrets.token_hex(2)}/"
    s3 = boto3.client("s3")
    for name in sorted(files, key=lambda name: name == "model.json"):
        extra = {}
        if name == wrong_checksum:  # S3 keeps the checksum sent with the upload: one that the bytes do not have
            extra["ChecksumSHA256"] = base64.b64encode(hashlib.sha256(b"other bytes").digest()).decode()
        s3.put_object(Bucket=BUCKET, Key=prefix + name, Body=files[name], ChecksumAlgorithm="SHA256", **extra)
    return f"s3://{BUCKET}/{prefix}"


def bundle_files(bundle: Path) -> dict[str, bytes]:
    return {name: (bundle / name).read_bytes() for name in ("model.onnx", "model.json")}


def assert_refused(stack: FakeStack, result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 2
    assert result.stderr.startswith("sml: error: ") and result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert stack.model_files() == stack.initial_model
    assert not list((stack.project / "functions" / "predict").glob(".model-*"))  # no staging folder left behind


def test_promote_s3_downloads_verifies_and_places_the_bundle(
    aws_stack: FakeStack, tiny_regression_bundle: Path
) -> None:
    source = upload({**bundle_files(tiny_regression_bundle), "curves.png": b"\x89PNG"})

    result = aws_stack.sml("promote", source)

    assert result.returncode == 0, result.stderr
    placed = aws_stack.model_files()
    assert {name: placed[name] for name in ("model.onnx", "model.json")} == bundle_files(tiny_regression_bundle)
    assert "curves.png" not in placed
    assert "into functions/predict/model" in result.stdout
    assert result.stdout.rstrip().endswith("next: sam build && sam deploy")


def test_promote_s3_refuses_a_model_whose_hash_differs_from_the_card(
    aws_stack: FakeStack, tiny_bundle: Path, tiny_regression_bundle: Path
) -> None:
    files = bundle_files(tiny_regression_bundle) | {"model.onnx": (tiny_bundle / "model.onnx").read_bytes()}

    result = aws_stack.sml("promote", upload(files))

    assert_refused(aws_stack, result, "model.onnx sha256")
    assert "does not match the card's" in result.stderr


def test_promote_s3_refuses_an_object_that_differs_from_its_s3_checksum(
    aws_stack: FakeStack, tiny_regression_bundle: Path
) -> None:

    source = upload(bundle_files(tiny_regression_bundle), wrong_checksum="model.onnx")

    result = aws_stack.sml("promote", source)

    assert_refused(aws_stack, result, f"{source}model.onnx does not match the SHA-256 checksum S3 stored for it")


def test_promote_s3_refuses_a_prefix_without_model_json(aws_stack: FakeStack, tiny_regression_bundle: Path) -> None:
    source = upload({"model.onnx": (tiny_regression_bundle / "model.onnx").read_bytes()})

    result = aws_stack.sml("promote", source)

    assert_refused(aws_stack, result, "holds no model.json: the job has not finished uploading the bundle")


def test_promote_s3_names_the_invalid_part_of_the_uri(aws_stack: FakeStack) -> None:
    result = aws_stack.sml("promote", "s3://BUCKET/bundles/JOB/")

    assert_refused(aws_stack, result, "bucket name 'BUCKET' is not valid: bucket names are lower case letters")


def upload_archive(files: dict[str, bytes], links: tuple[str, ...] = ()) -> str:
    """SageMaker's model.tar.gz of /opt/ml/model (members named ./NAME), as an isolated job leaves it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            member = tarfile.TarInfo(f"./{name}")
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
        for name in links:
            member = tarfile.TarInfo(f"./{name}")
            member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(member)
    key = f"models/digits-20261129-153000-{secrets.token_hex(2)}/output/model.tar.gz"
    boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=buffer.getvalue(), ChecksumAlgorithm="SHA256")
    return f"s3://{BUCKET}/{key}"


def test_promote_s3_unpacks_the_model_archive_of_an_isolated_sagemaker_job(
    aws_stack: FakeStack, tiny_regression_bundle: Path
) -> None:
    source = upload_archive({**bundle_files(tiny_regression_bundle), "history.json": b"[]"})

    result = aws_stack.sml("promote", source)

    assert result.returncode == 0, result.stderr
    placed = aws_stack.model_files()
    assert {name: placed[name] for name in ("model.onnx", "model.json")} == bundle_files(tiny_regression_bundle)
    assert "history.json" not in placed
    assert not list((aws_stack.project / "functions" / "predict").glob(".model-*"))


def test_promote_s3_refuses_an_archive_whose_model_is_a_link(
    aws_stack: FakeStack, tiny_regression_bundle: Path
) -> None:
    files = bundle_files(tiny_regression_bundle)
    source = upload_archive({"model.json": files["model.json"]}, links=("model.onnx",))

    result = aws_stack.sml("promote", source)

    assert_refused(aws_stack, result, f"{source}: model.onnx is not a regular file in the archive")
