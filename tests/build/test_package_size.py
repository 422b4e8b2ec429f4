"""The Lambda packages built by the SAM Makefiles fit Lambda's limits, hold what serving needs, and serve."""

import json
import platform
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scripts.package_size import folder_size
from scripts.rehearsal_root import PYTHON_VERSION  # the runtime's version (test_runtime_version holds it)

ROOT = Path(__file__).resolve().parents[2]
LAMBDA_UNZIPPED_LIMIT = 250 * 1024**2  # function + all its layers
AMAZON_LINUX_2023_GLIBC = (2, 34)  # what the python3.13 runtime's shared objects may need at most
ABI = f"cpython-{PYTHON_VERSION.replace('.', '')}"
pytestmark = pytest.mark.build


def make(target: str, folder: Path, artifacts: Path, **variables: str) -> Path:
    settings = [f"{name}={value}" for name, value in variables.items()]
    subprocess.run(
        [
            "make",
            "-s",
            "-C",
            str(ROOT / folder),
            target,
            f"ARTIFACTS_DIR={artifacts}",
            f"PYTHON={sys.executable}",
            *settings,
        ],
        check=True,
        capture_output=True,
    )
    return artifacts


@pytest.fixture(scope="module")
def function_dir(tmp_path_factory, digits_bundle):
    # PYC_PYTHON empty: the listing below holds whatever interpreters this machine has.
    artifacts = make(
        "build-PredictFunction", Path("functions/predict"), tmp_path_factory.mktemp("function"), PYC_PYTHON=""
    )
    for name in ("model.onnx", "model.json"):  # what `sml promote` would have placed
        (artifacts / "model" / name).write_bytes((digits_bundle / name).read_bytes())
    return artifacts


def build_layer(
    tmp_path_factory: pytest.TempPathFactory, arch: str, python_version: str = PYTHON_VERSION, **variables: str
) -> Path:
    folder = tmp_path_factory.mktemp(f"layer-{arch}-{python_version}")
    return make(
        "build-OnnxRuntimeLayer",
        Path("layers/onnxruntime"),
        folder,
        ARCH=arch,
        PYTHON_VERSION=python_version,
        **variables,
    )


MACHINES = {"arm64": "aarch64", "x86_64": "x86_64"}


@pytest.fixture(scope="module", params=sorted(MACHINES))
def lambda_layer(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """The layer as `sam build` makes it for the runtime, one architecture at a time."""
    # PYC_PYTHON empty: no bytecode, whatever interpreters this machine has (test_runtime_version covers it).
    return request.param, build_layer(tmp_path_factory, request.param, PYC_PYTHON="") / "python"


def glibc_needs(shared_object: Path) -> set[tuple[int, int]]:
    """The GLIBC_x.y symbol versions a shared object needs, from its .gnu.version_r section (as auditwheel reads)."""
    output = subprocess.run(["readelf", "-V", "-W", str(shared_object)], capture_output=True, text=True, check=True)
    needs = output.stdout.partition("Version needs section")[2]
    return {(int(major), int(minor)) for major, minor in re.findall(r"Name: GLIBC_(\d+)\.(\d+)\b", needs)}


def test_package_layer_runs_on_amazon_linux_2023_glibc(lambda_layer):
    arch, layer = lambda_layer
    needs = {path.relative_to(layer): glibc_needs(path) for path in layer.rglob("*.so*") if path.is_file()}

    too_new = {
        str(path): max(versions)
        for path, versions in needs.items()
        if max(versions, default=(0, 0)) > AMAZON_LINUX_2023_GLIBC
    }
    assert len(needs) > 10, sorted(needs)  # numpy's, onnxruntime's, orjson's, pydantic-core's ...
    assert max(max(versions, default=(0, 0)) for versions in needs.values()) >= (2, 17)  # readelf did read them
    assert too_new == {}, f"{arch}: needs a glibc newer than Amazon Linux 2023's 2.34"


def test_package_fits_lambda_and_holds_only_serving_code(function_dir, lambda_layer):
    arch, layer = lambda_layer
    machine = MACHINES[arch]

    total = folder_size(layer) + folder_size(function_dir)

    layer_mb, function_mb = folder_size(layer) / 1e6, folder_size(function_dir) / 1e6
    print(f"\n{arch}: layer {layer_mb:.1f} MB + function {function_mb:.2f} MB unzipped")
    assert total < LAMBDA_UNZIPPED_LIMIT
    assert list(layer.glob(f"onnxruntime/capi/onnxruntime_pybind11_state.{ABI}-{machine}-linux-gnu.so"))
    assert list(layer.glob(f"numpy/_core/_multiarray_umath.{ABI}-{machine}-linux-gnu.so"))
    assert list(layer.glob("aws_lambda_powertools/event_handler/api_gateway.py"))
    assert list(layer.glob(f"orjson/orjson.{ABI}-{machine}-linux-gnu.so"))
    for unused in ("onnxruntime/quantization", "onnxruntime/transformers", "onnxruntime/tools", "botocore", "sympy"):
        assert not (layer / unused).exists(), unused
    leftovers = [p for p in layer.rglob("*") if p.name in ("tests", "__pycache__") or p.suffix in (".pyi", ".pyc")]
    assert leftovers == []
    assert sorted(p.name for p in function_dir.iterdir()) == [
        "api.py",
        "app.py",
        "card_view.py",
        "contract.py",
        "envelope.py",
        "model",
        "model.py",
        "openapi_doc.py",
        "openapi_v2.py",
        "predict.py",
        "records.py",
        "v2.py",
        "v2_tensors.py",
    ]


LOCAL_ONLY = pytest.mark.skipif(platform.machine() != "x86_64", reason="the layer's wheels are built for x86_64 here")
LOCAL_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
TRACE_HEADER = "Root=1-6745d2de-0a1b2c3d4e5f60718293a4b5;Parent=53995c3f42cd8ad8;Sampled=1"


@pytest.fixture(scope="module")
def local_layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Lambda runs python3.13; this machine may not have it, so the same Makefile builds for the local interpreter.
    return build_layer(tmp_path_factory, "x86_64", LOCAL_VERSION, PYC_PYTHON=sys.executable) / "python"


def serve_once(function_dir: Path, layer: Path, env: dict[str, str]) -> dict[str, Any]:
    """Answer events/predict.json in a fresh `python -S`: nothing on sys.path but the stdlib, layer and function."""
    event = (ROOT / "events" / "predict.json").read_text()
    script = f"""
import json, sys
sys.path[:0] = [{str(function_dir)!r}, {str(layer)!r}]
import app
class Context:
    function_name, memory_limit_in_mb, aws_request_id = "PredictFunction", 1024, "id"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:PredictFunction"
response = app.lambda_handler(json.loads({event!r}), Context())
outside = sorted(name for name, module in sys.modules.items() if getattr(module, "__file__", None)
                 and not module.__file__.startswith((sys.base_prefix, {str(layer)!r}, {str(function_dir)!r})))
print(json.dumps({{"response": response, "outside": outside}}))
"""
    # LAMBDA_TASK_ROOT as in Lambda: the X-Ray SDK then samples locally instead of building a botocore client.
    env = {"LAMBDA_TASK_ROOT": str(function_dir), "MODEL_DIR": "model", "POWERTOOLS_METRICS_NAMESPACE": "Test"} | env
    result = subprocess.run(
        [sys.executable, "-S", "-c", script], env=env, cwd=function_dir, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


@LOCAL_ONLY
def test_package_layer_serves_predict_alone(local_layer, function_dir):
    bytecode = local_layer / "numpy" / "__pycache__" / f"__init__.cpython-{LOCAL_VERSION.replace('.', '')}.pyc"
    assert bytecode.read_bytes()[4:8] == (1).to_bytes(4, "little")  # hash-based, never checked against the source

    report = serve_once(function_dir, local_layer, {"POWERTOOLS_TRACE_DISABLED": "true"})

    body = json.loads(report["response"]["body"])
    assert report["response"]["statusCode"] == 200, body
    assert report["outside"] == []
    assert np.asarray(body["probabilities"]).shape == (1, 10)


@LOCAL_ONLY
def test_package_layer_traces_the_handler_to_the_xray_daemon(local_layer, function_dir):
    # Tracing on, as with `Tracing: Active`: the X-Ray SDK (and the wrapt the layer pins) must send the handler's
    # subsegment to the daemon, here a UDP socket of ours.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as daemon:
        daemon.bind(("127.0.0.1", 0))
        daemon.settimeout(10)
        env = {
            "POWERTOOLS_SERVICE_NAME": "predict",
            "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{daemon.getsockname()[1]}",
            "_X_AMZN_TRACE_ID": TRACE_HEADER,
        }

        report = serve_once(function_dir, local_layer, env)
        header, document = daemon.recv(65536).decode().split("\n", 1)

    assert report["response"]["statusCode"] == 200
    assert json.loads(header) == {"format": "json", "version": 1}
    subsegment = json.loads(document)
    assert subsegment["name"] == "## lambda_handler"
    assert subsegment["trace_id"] == TRACE_HEADER.split(";")[0].removeprefix("Root=")
    assert subsegment["annotations"] == {"ColdStart": True, "Service": "predict"}
    assert "metadata" not in subsegment  # capture_response=False: predictions stay out of traces


def test_package_function_ships_hash_based_bytecode(tmp_path):
    artifacts = make(
        "build-PredictFunction",
        Path("functions/predict"),
        tmp_path / "function",
        PYC_PYTHON=sys.executable,
        PYTHON_VERSION=LOCAL_VERSION,
    )

    tag = f"cpython-{LOCAL_VERSION.replace('.', '')}"
    for module in ("api", "app", "card_view", "envelope", "model", "openapi_doc", "openapi_v2", "predict", "records", "v2",
                   "v2_tensors"):
        bytecode = artifacts / "__pycache__" / f"{module}.{tag}.pyc"
        assert bytecode.read_bytes()[4:8] == (1).to_bytes(4, "little"), module  # unchecked: /var/task is read-only


def test_package_function_refuses_bytecode_of_another_python(tmp_path):
    with pytest.raises(subprocess.CalledProcessError):
        make(
            "build-PredictFunction",
            Path("functions/predict"),
            tmp_path / "function",
            PYC_PYTHON=sys.executable,
            PYTHON_VERSION="3.0",
        )
