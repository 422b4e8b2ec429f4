"""The CUDA speed paths (bf16 autocast, data in GPU or pinned host memory, torch.compile, DDP over NCCL).

Marked `gpu`: off by default, run with `pytest -m gpu` on a machine with CUDA. On a CPU the same settings
are accepted and ignored, which the last test checks everywhere.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from scripts.moto_server import free_port
from tests.unit.test_loop import small_config, toy_splits
from training.__main__ import main
from training.data.feed import Rows, keep_on_device
from training.fit.loop import fit
from training.models import build_model

REPO = Path(__file__).resolve().parents[2]
DIGITS = REPO / "examples/data/digits.csv"
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def train_on(device: torch.device, tmp_path: Path, **settings: object) -> dict[str, torch.Tensor]:
    splits = toy_splits()
    config = small_config(tmp_path, epochs=3, **settings)
    model = build_model(config, splits).to(device)
    fit(model, splits, config, device)
    return {name: tensor.cpu() for name, tensor in model.state_dict().items()}


@pytest.mark.gpu
@needs_cuda
def test_train_gpu_pinned_host_rows_train_like_rows_in_gpu_memory(tmp_path: Path) -> None:
    cuda = torch.device("cuda")

    on_device = train_on(cuda, tmp_path / "device", data_placement="device")
    on_host = train_on(cuda, tmp_path / "host", data_placement="host")

    for name, tensor in on_device.items():
        torch.testing.assert_close(on_host[name], tensor, rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
@needs_cuda
def test_train_gpu_rows_go_where_the_placement_says() -> None:
    cuda = torch.device("cuda")
    x, y = torch.randn(100, 8), torch.randint(0, 3, (100,))

    host = Rows(x, y, cuda, on_device=keep_on_device("host", cuda, x.nbytes))
    batch_x, batch_y = host.take(torch.arange(10))

    assert host.x.is_pinned() and host.index_device.type == "cpu"
    assert batch_x.device.type == batch_y.device.type == "cuda"
    assert keep_on_device("auto", cuda, x.nbytes) is True
    assert keep_on_device("auto", cuda, 10**15) is False


@pytest.mark.gpu
@needs_cuda
def test_train_gpu_bf16_and_compile_reach_the_digits_quality_bar(tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    args = [
        "--data",
        str(DIGITS),
        "--target",
        "label",
        "--out",
        str(out),
        "--epochs",
        "30",
        "--precision",
        "bf16",
        "--compile",
    ]

    code = main([*args, "--processes", "1", "--progress", "none"])

    card = json.loads((out / "model.json").read_text())
    assert code == 0
    assert card["metrics"]["test"]["accuracy"] >= 0.97


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_train_gpu_one_process_per_gpu_over_nccl_writes_one_bundle(tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    port = free_port()
    command = ["--data", str(DIGITS), "--target", "label", "--out", str(out), "--epochs", "30", "--progress", "none"]

    result = subprocess.run(
        [sys.executable, "-m", "training", *command],
        env={**os.environ, "MASTER_PORT": str(port)},
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert result.returncode == 0, result.stderr
    assert result.stderr.count("export: bundle") == 1
    assert json.loads((out / "model.json").read_text())["metrics"]["test"]["accuracy"] >= 0.97


def test_train_gpu_settings_are_ignored_on_a_cpu(tmp_path: Path) -> None:
    cpu = torch.device("cpu")

    plain = train_on(cpu, tmp_path / "plain")
    with_gpu_settings = train_on(cpu, tmp_path / "gpu", precision="bf16", compile=True, data_placement="host")

    for name, tensor in plain.items():
        assert torch.equal(with_gpu_settings[name], tensor), name
