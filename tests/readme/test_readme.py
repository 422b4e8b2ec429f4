"""The README's commands run as written: each ```bash and ```python block, top to bottom, in a scratch copy.

Blocks marked `# needs AWS`, `# needs GPUs` or `# needs PyPI` are left out, and so are the commands in
NOT_RUN, each with its reason. Everything else runs in the environment the README tells a reader to enter
(its `source .venv/bin/activate` block), with these changes only: fewer epochs, a free port for `sml serve`
(and a wait until it listens, which a person typing the next command gives it; a Python block that calls
localhost:3000 gets the `sml serve` its prose asks for), and a scratch folder for SageMaker's /tmp/ml.
"""

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MARKERS = ("# needs AWS", "# needs GPUs", "# needs PyPI")
NOT_RUN = {
    "make test": "it is this test suite",
    "make install tools": "the test runs in the environment they made: .venv/ and .venv-tools/ are linked in",
    "make format": "it rewrites files; make test's lint runs the same ruff",
    "make validate build": "sam build downloads the layer's wheels from PyPI (tests/template/test_sam_build.py)",
    "make bench": "it trains for minutes (benchmarks/train_throughput.py)",
    "make bench-serving": "minutes of cold starts; its modules are tested in tests/unit/test_bench_contenders.py",
    "make bench-serving ARGS=--quick": "a minute of cold starts; its modules are tested in test_bench_contenders.py",
    "make rehearse": "it needs root, debootstrap and qemu-user-static (CI runs it)",
}
EPOCHS = "2"
BLOCK = re.compile(r"^```(bash|python)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks() -> list[tuple[str, str]]:
    """(language, text) of every README block a reader can run offline."""
    return [(kind, text) for kind, text in BLOCK.findall(README.read_text()) if not any(m in text for m in MARKERS)]


def command_of(line: str) -> str:
    return line.split("  #")[0].split(" # ")[0].strip()


def runnable(text: str) -> str:
    """The block less the commands in NOT_RUN."""
    return "\n".join(line for line in text.splitlines() if command_of(line) not in NOT_RUN)


def fewer_epochs(text: str) -> str:
    text = re.sub(r"--epochs \d+", f"--epochs {EPOCHS}", text)
    text = re.sub(r'"epochs": "\d+"', f'"epochs": "{EPOCHS}"', text)
    text = re.sub(r"^(make (demo|train))(?=\s|$)", rf"\1 EPOCHS={EPOCHS}", text, flags=re.MULTILINE)
    lines = [
        f"{line} --epochs {EPOCHS}" if "-m training --data" in line and "--epochs" not in line else line
        for line in text.splitlines()
    ]
    return "\n".join(lines)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def served(text: str, port: int) -> str:
    """`sml serve` on a free port; after a command sent to the background, wait until the server answers."""
    wait = f"for _ in $(seq 150); do curl -s -o /dev/null localhost:{port}/health && break; sleep 0.2; done"
    lines = []
    for line in text.replace("3000", str(port)).splitlines():
        lines.append(line)
        if command_of(line).endswith("&"):
            lines.append(wait)
    return "\n".join(lines)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the checkout, without build outputs, sharing its environments."""
    ignored = shutil.ignore_patterns(".git", ".venv*", "build", ".aws-sam", "__pycache__", ".*_cache")
    if not (ROOT / ".venv" / ".installed").is_file():
        pytest.fail("the README's commands run in .venv/, which is missing; create it with `make install`")
    copy = Path(shutil.copytree(ROOT, tmp_path_factory.mktemp("readme") / "project", ignore=ignored))
    # make's install rule must never run through the linked .venv (it would install this copy, editable, into it):
    # every copied file, the rule's prerequisites included, is made older than the stamp it checks.
    stamp = (ROOT / ".venv" / ".installed").stat().st_mtime
    for path in copy.rglob("*"):
        os.utime(path, (stamp - 1, stamp - 1))
    for venv in (".venv", ".venv-tools"):
        (copy / venv).symlink_to(ROOT / venv)
    return copy


def test_the_readme_says_once_how_to_enter_the_environment() -> None:
    (enter,) = [text for _, text in blocks() if "source .venv/bin/activate" in text]

    assert runnable(enter).splitlines() == [
        "source .venv/bin/activate                 # python, sml and torchrun from .venv/",
        'export PATH="$PATH:$PWD/.venv-tools/bin"  # sam, after .venv/bin (this venv has a python of its own)',
    ]
    every_block = "\n".join(text for _, text in BLOCK.findall(README.read_text()))
    assert ".venv/bin/" not in every_block.replace("source .venv/bin/activate", ""), "commands run in the environment"


def test_every_offline_readme_command_runs_as_written(scratch: Path) -> None:
    (enter,) = [runnable(text) for _, text in blocks() if "source .venv/bin/activate" in text]
    port = free_port()
    environment = {**os.environ, "PET_MASTER_PORT": str(free_port())}  # torchrun's rendezvous, away from 29500
    ran = []
    for index, (kind, text) in enumerate(blocks()):
        body = served(fewer_epochs(runnable(text)), port).replace("/tmp/ml", str(scratch / "ml"))
        if not body.strip() or "source .venv/bin/activate" in text:
            continue
        if kind == "python":
            (scratch / f"readme_block_{index}.py").write_text(body + "\n")
            body = f"python readme_block_{index}.py"
            if "localhost:3000" in text:  # the prose asks for `sml serve --port 3000` in another terminal
                body = served(f"sml serve --port 3000 &\n{body}\nkill %1", port)
        # A failing block must not leave `sml serve &` behind: it would hold the output pipe open, and the run.
        script = f"set -eo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{enter}\n{body}\n"
        started = time.monotonic()
        result = subprocess.run(
            ["bash", "-c", script], cwd=scratch, env=environment, capture_output=True, text=True, timeout=600
        )
        print(f"{time.monotonic() - started:6.1f} s  {body.splitlines()[0]}")
        assert result.returncode == 0, (
            f"README block failed:\n{body}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
        assert "Traceback" not in result.stderr, result.stderr
        ran.append((body, result.stdout))

    serve_output = next(stdout for body, stdout in ran if "sml serve" in body)
    assert '"status": "ready"' in serve_output or '"status":"ready"' in serve_output
    assert '"predictions"' in serve_output
    assert (scratch / "ml" / "model" / "model.json").is_file()  # the SageMaker-local try
    assert (scratch / "build" / "ddp" / "model.json").is_file()  # torchrun on the CPU
    assert (scratch / "build" / "cnn" / "model.json").is_file()
