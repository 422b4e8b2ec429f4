"""A real, Docker-free `sam build` of a copy of the repository, for each architecture the template offers."""

import shutil
from pathlib import Path

import pytest

from scripts.package_size import folder_size
from tests.template.cfn import load_sam_template
from tests.template.conftest import ROOT, TOOLS_VENV, run, tool

LAMBDA_UNZIPPED_LIMIT = 262_144_000  # 250 MB, function and layers together
ELF_MACHINE = {"arm64": 183, "x86_64": 62}  # e_machine of EM_AARCH64 and EM_X86_64
BUNDLE_FILES = ("model.onnx", "model.json")


def copy_project(destination: Path, bundle: Path) -> None:
    """The files `sam build` reads, with `bundle` promoted into functions/predict/model/."""
    for name in ("template.yaml", "samconfig.toml"):
        shutil.copy2(ROOT / name, destination / name)
    skip = shutil.ignore_patterns("__pycache__", "model")
    shutil.copytree(ROOT / "functions" / "predict", destination / "functions" / "predict", ignore=skip)
    shutil.copytree(ROOT / "functions" / "pretraffic", destination / "functions" / "pretraffic", ignore=skip)
    shutil.copytree(ROOT / "layers" / "onnxruntime", destination / "layers" / "onnxruntime", ignore=skip)
    model_dir = destination / "functions" / "predict" / "model"
    model_dir.mkdir()
    for name in BUNDLE_FILES:
        shutil.copy2(bundle / name, model_dir / name)


def elf_machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", path
    return int.from_bytes(header[18:20], "little")


# One test per architecture: each build downloads wheels for a minute, and pytest-xdist would
# repeat a shared fixture on every worker.
@pytest.mark.parametrize("architecture", sorted(ELF_MACHINE))
def test_sam_build_packages_model_and_native_layer_within_limits(
    architecture: str, tmp_path: Path, tiny_bundle: Path
) -> None:
    copy_project(tmp_path, tiny_bundle)
    command: list[str | Path] = [
        tool(TOOLS_VENV, "sam"),
        "build",
        "--parameter-overrides",
        f"Architecture={architecture}",
    ]

    result = run(command, cwd=tmp_path, ARCH=architecture)

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    built = tmp_path / ".aws-sam" / "build"
    function, layer = built / "PredictFunction", built / "OnnxRuntimeLayer"
    assert (function / "app.py").is_file()
    for name in BUNDLE_FILES:  # the model travels in the code package, so a new model is a new version
        assert (function / "model" / name).read_bytes() == (tiny_bundle / name).read_bytes()
    (native,) = (layer / "python" / "onnxruntime" / "capi").glob("onnxruntime_pybind11_state*.so")
    assert elf_machine(native) == ELF_MACHINE[architecture]
    built_layer = load_sam_template(built / "template.yaml")["Resources"]["OnnxRuntimeLayer"]
    assert built_layer["Metadata"]["BuildArchitecture"] == architecture
    assert "not listed in CompatibleArchitectures" not in result.stdout + result.stderr
    # The pre-traffic check is its one module: boto3 comes with the runtime.
    hook = built / "PreTrafficFunction"
    assert sorted(path.name for path in hook.iterdir()) == ["hook.py"]
    assert (hook / "hook.py").read_bytes() == (ROOT / "functions" / "pretraffic" / "hook.py").read_bytes()
    size = folder_size(function) + folder_size(layer)
    assert size < LAMBDA_UNZIPPED_LIMIT, f"{size / 1e6:.0f} MB unzipped"
