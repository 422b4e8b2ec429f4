"""Locate the tools venvs, run their commands with no way to reach AWS, and translate the template once."""

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.template.cfn import load_sam_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
# The Makefile creates both with scripts/template_tools.sh; CI may point elsewhere.
TOOLS_VENV = Path(os.environ.get("SML_TOOLS_VENV", ROOT / ".venv-tools"))
CHECKOV_VENV = Path(os.environ.get("SML_CHECKOV_VENV", ROOT / ".venv-checkov"))


def tool(venv: Path, name: str) -> Path:
    """Path of a tool in a tools venv; fails (not skips) when it is missing, since CI always makes it."""
    path = venv / "bin" / name
    if not path.exists():
        pytest.fail(f"{path} is missing; create the tools venvs with `make tools` (scripts/template_tools.sh)")
    return path


def offline_env(**extra: str) -> dict[str, str]:
    """Environment for sam/cfn-lint/checkov: a region, dummy credentials, no profile, no telemetry."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing",  # never valid: a stray AWS call fails instead of touching an account
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        SAM_CLI_TELEMETRY="0",
    )
    env.update(extra)
    return env


def run(
    command: list[str | Path], cwd: Path = ROOT, timeout: float = 600, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=offline_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def translate(template: Path, **parameters: str) -> dict[str, Any]:
    """template translated by aws-sam-translator locally (scripts/sam_translate.py in the tools venv)."""
    options = [f"--parameter={name}={value}" for name, value in parameters.items()]
    result = run([tool(TOOLS_VENV, "python"), ROOT / "scripts" / "sam_translate.py", template, *options])
    assert result.returncode == 0, result.stderr
    translated: dict[str, Any] = json.loads(result.stdout)
    return translated


# One process for many translations: each new process spends a second importing the translator.
TRANSLATE_MANY = """
import json, sys
sys.path.insert(0, sys.argv[1])
from sam_translate import translate
from pathlib import Path
print(json.dumps([translate(Path(sys.argv[2]), parameters, "us-east-1") for parameters in json.load(sys.stdin)]))
"""


def translate_many(template: Path, parameter_sets: list[dict[str, str]]) -> list[dict[str, Any]]:
    """`template` translated once for each set of parameter values, in one tools-venv process."""
    command: list[str | Path] = [tool(TOOLS_VENV, "python"), "-c", TRANSLATE_MANY, ROOT / "scripts", template]
    result = subprocess.run(
        [str(part) for part in command],
        cwd=ROOT,
        env=offline_env(),
        input=json.dumps(parameter_sets),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    translations: list[dict[str, Any]] = json.loads(result.stdout)
    return translations


@pytest.fixture(scope="session")
def sam_template() -> dict[str, Any]:
    """template.yaml as written (SAM resources, Globals, Metadata)."""
    return load_sam_template(TEMPLATE)


@pytest.fixture(scope="session")
def translated() -> dict[str, Any]:
    """template.yaml as CloudFormation sees it after the SAM transform, with default parameters."""
    return translate(TEMPLATE)
