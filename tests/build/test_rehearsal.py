"""`make rehearse` fails in one readable line, naming the architecture and what is missing, for a broken build.

Run by `make rehearse` after the rehearsal itself (marker `rehearsal`): each test breaks a copy of its
build/rehearsal/<arch> output and rehearses that in the cached Debian root (root, debootstrap, qemu-user-static).
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILT = ROOT / "build" / "rehearsal"
pytestmark = pytest.mark.rehearsal


def broken_copy(arch: str, tmp_path: Path) -> Path:
    source = BUILT / arch
    if not (source / "PredictFunction").is_dir():
        pytest.fail(f"{source} is missing: `make rehearse` builds it before it runs these tests")
    return Path(shutil.copytree(source, tmp_path / arch, symlinks=True))


def rehearse(arch: str, built: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "scripts.rehearse", "--arch", arch, "--built", str(built)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_rehearsal_names_the_architecture_whose_layer_lacks_onnxruntimes_native_module(arch, tmp_path):
    built = broken_copy(arch, tmp_path)
    capi = built / "OnnxRuntimeLayer/python/onnxruntime/capi"
    (native,) = capi.glob("onnxruntime_pybind11_state*.so")
    native.unlink()

    result = rehearse(arch, built)

    assert result.returncode == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"rehearsal failed: {arch}: the built handler cannot be imported: "), line
    assert "onnxruntime_pybind11_state" in line


def test_rehearsal_names_a_package_the_handler_imports_that_only_the_venv_has(tmp_path):
    built = broken_copy("x86_64", tmp_path)
    app = built / "PredictFunction/app.py"
    app.write_text("import yaml  # sml's dependency, in .venv, never in the layer\n" + app.read_text())
    for bytecode in (built / "PredictFunction/__pycache__").glob("app.*.pyc"):
        bytecode.unlink()  # unchecked-hash bytecode would run the old source

    result = rehearse("x86_64", built)

    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line == (
        "rehearsal failed: x86_64: the built handler cannot be imported: ModuleNotFoundError: No module named 'yaml'"
    )
