"""Shared test setup: powertools env vars, real tiny model bundles, API Gateway events, a fake context."""

import importlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
EVENTS_DIR = ROOT / "events"

# One thread per process: `pytest -n 2` on 2 cores, and torch's tiny ops are ~10x slower when
# oversubscribed. Set before torch is imported; subprocesses (python -m training, sml) inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Set before any test imports the function: powertools reads them when its objects are built.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "predict")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "ServerlessMLTest")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_DEV", "false")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


@dataclass
class FakeLambdaContext:
    """The attributes of Lambda's context object that powertools reads."""

    function_name: str = "PredictFunction"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:PredictFunction"
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    log_group_name: str = "/aws/lambda/PredictFunction"
    log_stream_name: str = "2026/11/29/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-feature, 3-class classification bundle (iris-shaped)."""
    from tests.fixtures.make_tiny_bundle import make_tiny_bundle  # onnx is imported only by tests that use it

    return make_tiny_bundle(tmp_path_factory.mktemp("tiny-bundle"))


@pytest.fixture(scope="session")
def tiny_regression_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-feature regression bundle."""
    from tests.fixtures.make_tiny_bundle import make_tiny_bundle

    return make_tiny_bundle(tmp_path_factory.mktemp("tiny-regression-bundle"), task="regression")


@pytest.fixture(scope="session")
def digits_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 64-feature, 10-class bundle shaped like `make demo`'s digits model; events/*.json fit it."""
    from tests.fixtures.make_tiny_bundle import make_tiny_bundle

    return make_tiny_bundle(tmp_path_factory.mktemp("digits-bundle"), n_features=64)


@pytest.fixture(scope="session")
def penguins_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle trained (a few seconds) on examples/data/penguins.csv: categorical island and sex, 3 species."""
    from training.__main__ import train
    from training.config import TrainConfig

    out = tmp_path_factory.mktemp("penguins-bundle") / "bundle"
    config = TrainConfig(data=str(ROOT / "examples/data/penguins.csv"), target="species", out=str(out), epochs=15)
    train(config)
    return out


def read_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS_DIR / name).read_text())
    return event


@pytest.fixture
def load_event() -> Callable[[str], dict[str, Any]]:
    """load_event("predict.json") -> a fresh copy of events/predict.json, safe to modify."""
    return read_event


FUNCTION_DIR = ROOT / "functions" / "predict"
FUNCTION_MODULES = ("app", "api", "predict", "model", "contract", "openapi_doc", "card_view", "envelope", "records",
                    "openapi_v2", "v2", "v2_tensors")  # fmt: skip


def import_predict_app(monkeypatch: pytest.MonkeyPatch, model_dir: Path, **env: str) -> ModuleType:
    """Import functions/predict/app.py afresh against model_dir, as Lambda's init would.

    The function's folder goes first on sys.path, as /var/task does in Lambda.
    """
    monkeypatch.setenv("MODEL_DIR", str(model_dir))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.syspath_prepend(str(FUNCTION_DIR))
    drop_predict_modules()
    return importlib.import_module("app")


def drop_predict_modules() -> None:
    for module in FUNCTION_MODULES:
        sys.modules.pop(module, None)


@pytest.fixture
def load_predict_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., ModuleType]]:
    """load_predict_app(model_dir, MAX_BATCH="8") -> the app module, loaded against that bundle."""
    yield lambda model_dir, **env: import_predict_app(monkeypatch, model_dir, **env)
    drop_predict_modules()


PRETRAFFIC_HOOK = ROOT / "functions" / "pretraffic" / "hook.py"


def import_pretraffic_hook() -> ModuleType:
    """functions/pretraffic/hook.py as its own module (a name no other function's module uses)."""
    spec = importlib.util.spec_from_file_location("pretraffic_hook", PRETRAFFIC_HOOK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
