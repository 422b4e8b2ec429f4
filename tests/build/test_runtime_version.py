"""The Lambda runtime is the one `make rehearse` runs, and every build path compiles bytecode for it or says why not."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.rehearsal_root import PYTHON_VERSION
from sml.local.template import load_template
from tests.template.cfn import load_sam_template

ROOT = Path(__file__).resolve().parents[2]
MAKEFILES = (ROOT / "layers/onnxruntime/Makefile", ROOT / "functions/predict/Makefile")
LOCAL_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"


def lookup_block(makefile: Path) -> str:
    """The PYC_PYTHON lookup, from its first comment line to its endif."""
    text = makefile.read_text()
    return text[text.index("# Bytecode needs an interpreter") : text.index("endif", text.index("PYC_PYTHON :="))]


def test_template_makefiles_and_rehearsal_root_name_one_python_version():
    template = load_sam_template(ROOT / "template.yaml")
    runtime = f"python{PYTHON_VERSION}"

    assert load_template(ROOT / "template.yaml", "us-east-1").function("PredictFunction").runtime == runtime
    assert template["Resources"]["OnnxRuntimeLayer"]["Properties"]["CompatibleRuntimes"] == [runtime]
    for makefile in MAKEFILES:
        assert re.findall(r"^PYTHON_VERSION \?= ([\d.]+)", makefile.read_text(), re.MULTILINE) == [PYTHON_VERSION]
    assert lookup_block(MAKEFILES[0]) == lookup_block(MAKEFILES[1])


def build_function(tmp_path: Path, path: str, **variables: str) -> subprocess.CompletedProcess[str]:
    # HOME elsewhere: no rehearsal root's interpreter, so only PATH can offer one.
    env = {**os.environ, "PATH": path, "HOME": str(tmp_path / "home"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    settings = [f"{name}={value}" for name, value in variables.items()]
    command = ["make", "-s", "-C", str(ROOT / "functions/predict"), "build-PredictFunction", *settings]
    return subprocess.run(
        [*command, f"ARTIFACTS_DIR={tmp_path / 'function'}"], env=env, capture_output=True, text=True, check=False
    )


def test_function_bytecode_comes_from_a_python_of_the_version_found_on_path(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / f"python{LOCAL_VERSION}").symlink_to(sys.executable)

    result = build_function(tmp_path, f"{bin_dir}:/usr/bin:/bin", PYTHON_VERSION=LOCAL_VERSION)

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "function/__pycache__" / f"app.cpython-{LOCAL_VERSION.replace('.', '')}.pyc").is_file()


@pytest.mark.parametrize("impostor", ["#!/bin/sh\nexit 127\n", f'#!/bin/sh\nexec {sys.executable} "$@"\n'])
def test_function_builds_without_bytecode_when_no_python_of_the_version_runs(tmp_path, impostor):
    # A pyenv shim whose version is not installed, or a python3.13 that is really another Python.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / f"python{PYTHON_VERSION}").write_text(impostor)
    (bin_dir / f"python{PYTHON_VERSION}").chmod(0o755)

    result = build_function(tmp_path, f"{bin_dir}:/usr/bin:/bin")

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "function/app.py").is_file()
    assert not (tmp_path / "function/__pycache__").exists()
    warnings = [line for line in result.stderr.splitlines() if line.startswith(f"warning: no python{PYTHON_VERSION}")]
    assert len(warnings) == 1, result.stderr
