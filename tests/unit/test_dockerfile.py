"""training/Dockerfile, read as Docker would: what it copies exists, the base is pinned, it runs unprivileged."""

import re
import shlex
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "training" / "Dockerfile"


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


def test_dockerfile_base_image_is_pinned_by_tag() -> None:
    (base,) = arguments_of("FROM")

    image, _, tag = base.split()[0].partition(":")
    assert image == "pytorch/pytorch"
    assert re.fullmatch(r"\d+\.\d+\.\d+-cuda[\d.]+-cudnn\d+-runtime", tag), tag


def test_dockerfile_runs_as_an_unprivileged_user() -> None:
    users = arguments_of("USER")

    assert users, "no USER: the job would run as root"
    assert users[-1] not in ("root", "0")
    assert any(f"useradd --create-home --uid 1000 {users[-1]}" in run for run in arguments_of("RUN"))


def test_dockerfile_entrypoint_is_the_training_module_and_train_is_on_the_path() -> None:
    (entrypoint,) = arguments_of("ENTRYPOINT")
    runs = " ".join(arguments_of("RUN"))

    assert entrypoint == '["python", "-m", "training"]'
    assert (REPO / "training" / "__main__.py").is_file()
    assert "exec python -m training train" in runs and "> /usr/local/bin/train" in runs
    assert "chmod 0755 /usr/local/bin/train" in runs


def test_dockerfile_installs_dependencies_before_copying_the_code() -> None:
    steps = [(instruction, arguments) for instruction, arguments in instructions() if instruction in ("COPY", "RUN")]

    install = next(index for index, (_, arguments) in enumerate(steps) if 'pip install ".[training]"' in arguments)
    code = next(index for index, (kind, arguments) in enumerate(steps) if kind == "COPY" and "training/" in arguments)
    assert steps[0] == ("COPY", "pyproject.toml README.md ./")
    assert install < code
