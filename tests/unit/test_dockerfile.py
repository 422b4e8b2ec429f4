"""training/Dockerfile, read as Docker would: the tested pins, any user, a C compiler, and hadolint's silence."""

import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "training" / "Dockerfile"
REQUIREMENTS = REPO / "training" / "requirements.txt"
PINNED_INSTALL = "pip install --no-cache-dir --requirement training/requirements.txt"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    lines = [line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    return [
        (parts[0].upper(), parts[1] if len(parts) > 1 else "")
        for parts in (line.strip().split(maxsplit=1) for line in joined.splitlines() if line.strip())
    ]


def arguments_of(name: str) -> list[str]:
    return [arguments for instruction, arguments in instructions() if instruction == name]


def test_dockerfile_copies_only_files_that_exist() -> None:
    copies = arguments_of("COPY")

    sources = [source for copy in copies for source in shlex.split(copy)[:-1] if not source.startswith("--")]
    assert sources, "no COPY instruction"
    missing = [source for source in sources if not (REPO / source).exists()]
    assert missing == []


def test_dockerignore_lets_in_what_the_dockerfile_copies_and_nothing_else() -> None:
    lines = [line for line in (REPO / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    sources = {source.rstrip("/") for copy in arguments_of("COPY") for source in shlex.split(copy)[:-1]}

    assert lines[0] == "*"
    let_in = {line.removeprefix("!") for line in lines if line.startswith("!")}
    assert {source for source in sources if not any(source.startswith(allowed) for allowed in let_in)} == set()
    assert {allowed for allowed in let_in if not any(source.startswith(allowed) for source in sources)} == set()


def test_dockerfile_base_image_is_python_pinned_by_its_full_version() -> None:
    (base,) = arguments_of("FROM")

    image, _, tag = base.split()[0].partition(":")
    assert image == "python"
    assert re.fullmatch(r"\d+\.\d+\.\d+-slim-[a-z]+", tag), tag


def test_dockerfile_runs_as_any_user_and_every_user_can_write_the_job_folders() -> None:
    runs = " ".join(arguments_of("RUN"))
    environment = " ".join(arguments_of("ENV"))

    assert arguments_of("USER") == []  # SageMaker's /opt/ml mounts are root's: the platform picks the user
    for folder in ("/opt/ml/model", "/opt/ml/output", "/opt/ml/checkpoints"):
        assert re.search(rf"mkdir -p [^&]*{folder}\b", runs) and re.search(rf"chmod 0777 [^&]*{folder}\b", runs), folder
    for variable in ("XDG_CACHE_HOME", "MPLCONFIGDIR", "TRITON_HOME", "TRITON_CACHE_DIR", "TORCHINDUCTOR_CACHE_DIR"):
        assert re.search(rf"\b{variable}=/tmp\b", environment), f"{variable}: a uid without a home needs it in /tmp"


def test_dockerfile_brings_a_c_compiler_for_torch_compile() -> None:
    installs = [run for run in arguments_of("RUN") if "apt-get install" in run]

    assert installs and all("--no-install-recommends" in run for run in installs)
    packages = " ".join(installs).split()
    assert "gcc" in packages and "libc6-dev" in packages  # Triton compiles and links its launchers at run time


def test_dockerfile_entrypoint_is_the_training_module_and_train_is_on_the_path() -> None:
    (entrypoint,) = arguments_of("ENTRYPOINT")
    runs = " ".join(arguments_of("RUN"))

    assert entrypoint == '["python", "-m", "training"]'
    assert (REPO / "training" / "__main__.py").is_file()
    assert "exec python -m training train" in runs and "> /usr/local/bin/train" in runs
    assert "chmod 0755 /usr/local/bin/train" in runs


def test_dockerfile_installs_the_pinned_requirements_before_copying_the_code() -> None:
    steps = [(instruction, arguments) for instruction, arguments in instructions() if instruction in ("COPY", "RUN")]
    copies = [arguments for kind, arguments in steps if kind == "COPY"]

    install = next(index for index, (_, arguments) in enumerate(steps) if PINNED_INSTALL in arguments)
    code = steps.index(("COPY", "training/ training/"))
    assert copies[0] == "training/requirements.txt training/requirements.txt"
    assert install < code
    # Nothing else is resolved by pip: the project goes in without dependencies and with the pinned setuptools.
    others = [arguments for _, arguments in steps if "pip install" in arguments and PINNED_INSTALL not in arguments]
    assert [re.search(r"pip install [^&]*", run)[0].strip() for run in others] == [  # type: ignore[index]
        "pip install --no-cache-dir --no-deps --no-build-isolation ."
    ]


def test_training_requirements_are_what_the_tests_run() -> None:
    """The pins file equals what scripts/training_pins.py reads from this test environment's packages."""
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "training_pins.py")], capture_output=True, text=True, check=True
    )

    assert result.stdout == REQUIREMENTS.read_text(), (
        "training/requirements.txt drifted from the test environment: "
        ".venv/bin/python scripts/training_pins.py > training/requirements.txt"
    )


def test_training_requirements_hold_pyproject_dev_pins_and_the_torch_the_tests_run() -> None:
    pinned = dict(line.split("==") for line in REQUIREMENTS.read_text().splitlines() if not line.startswith("#"))
    dev = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    dev_pins = dict(re.sub(r"\[.*\]", "", item).split("==") for item in dev)

    shared = sorted(set(pinned) & set(dev_pins))
    assert {"torch", "onnx", "onnxruntime", "onnxscript", "numpy", "pandas"} <= set(shared)
    assert {name: pinned[name] for name in shared} == {name: dev_pins[name] for name in shared}
    assert pinned["torch"] == torch.__version__.split("+")[0]


def test_dockerfile_python_is_the_one_the_pins_were_resolved_on() -> None:
    (base,) = arguments_of("FROM")
    resolved = re.search(r"CPython (\d+\.\d+) ", REQUIREMENTS.read_text())

    assert resolved is not None
    assert base.split(":")[1].startswith(f"{resolved[1]}."), (base, resolved[1])


def test_hadolint_reports_nothing(tmp_path: Path) -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    # tmp_path as home and working folder: no stray .hadolint.yaml is read
    environment = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}

    result = subprocess.run(
        [str(hadolint), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, cwd=tmp_path, env=environment
    )

    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
