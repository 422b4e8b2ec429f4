"""The fake AWS account: boto3 reaches moto on 127.0.0.1 and each test starts empty."""

import boto3


def test_moto_server_serves_s3_on_loopback(aws_endpoint: str) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="artifacts")

    s3.put_object(Bucket="artifacts", Key="hello.txt", Body=b"hi")

    assert aws_endpoint.startswith("http://127.0.0.1:")
    assert s3.get_object(Bucket="artifacts", Key="hello.txt")["Body"].read() == b"hi"


def test_moto_server_reset_empties_the_account(aws_endpoint: str) -> None:
    assert boto3.client("s3").list_buckets()["Buckets"] == []
