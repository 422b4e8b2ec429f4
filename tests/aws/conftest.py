"""Fixtures for tests that talk to AWS APIs: moto's server on 127.0.0.1, started once per session."""

from collections.abc import Iterator

import pytest

from scripts.moto_server import FAKE_CREDENTIALS, moto_server, reset


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def aws_endpoint(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty fake account: boto3 here and in subprocesses talks only to moto on 127.0.0.1."""
    reset(moto_url)
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return moto_url
