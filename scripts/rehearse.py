"""`make rehearse`: `sam build` for each architecture, then the *built* handler answers on the runtime's Python.

    .venv/bin/python -m scripts.rehearse [--arch x86_64] [--bundle DIR] [--built DIR]

Each architecture's `.aws-sam/build` goes to build/rehearsal/<arch>; its function is copied to a Debian root's
/var/task and its layer to /opt (scripts/rehearsal_root.py), and scripts/rehearsal_driver.py runs the handler
there with `python3.X -I -S`, Lambda's environment from the template and nothing else on sys.path (arm64
under qemu-aarch64-static). Without --bundle the tiny digits-shaped fixture bundle is promoted into a scratch
copy of the project; --built DIR rehearses an existing `sam build` output for one --arch. A failure is one
line naming the architecture and what went wrong, and exit code 1.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from scripts import rehearsal_checks as checks
from scripts import rehearsal_root
from scripts.rehearsal_checks import RehearsalError
from sml.local.template import load_template

ROOT = Path(__file__).resolve().parents[1]
SAM = Path(os.environ.get("SML_TOOLS_VENV", ROOT / ".venv-tools")) / "bin" / "sam"  # as tests/template finds it
REGION = "us-east-1"
RUNTIME_TASK, RUNTIME_DIR = "/var/task", "/var/runtime"


def copy_project(destination: Path, bundle: Path) -> None:
    """The files `sam build` reads, with `bundle` promoted into functions/predict/model/."""
    for name in ("template.yaml", "samconfig.toml"):
        shutil.copy2(ROOT / name, destination / name)
    skip = shutil.ignore_patterns("__pycache__", "model")
    for folder in ("functions", "layers"):  # every CodeUri and ContentUri the template names
        shutil.copytree(ROOT / folder, destination / folder, ignore=skip)
    (destination / "functions/predict/model").mkdir()
    for name in ("model.onnx", "model.json"):
        shutil.copy2(bundle / name, destination / "functions/predict/model" / name)


def sam_build(project: Path, arch: str, out: Path) -> Path:
    shutil.rmtree(out, ignore_errors=True)
    command = [str(SAM), "build", "--parameter-overrides", f"Architecture={arch}", "--build-dir", str(out)]
    environment = {**os.environ, "ARCH": arch, "SAM_CLI_TELEMETRY": "0"}
    result = subprocess.run(command, cwd=project, env=environment, capture_output=True, text=True)
    if result.returncode != 0:
        lines = (result.stdout + result.stderr).strip().splitlines() or ["no output"]
        telling = [line for line in lines if "error" in line.lower() and not line.startswith("make")] or lines
        raise RehearsalError(arch, f"sam build failed: {telling[-1].strip()}")
    for line in result.stderr.splitlines():
        if line.startswith("warning: no python"):
            print(f"{arch}: {line}", file=sys.stderr)
    return out


def lambda_environment(built: Path) -> dict[str, str]:
    """What Lambda puts in os.environ: the template's variables, then the runtime's own."""
    function = load_template(built / "template.yaml", REGION).function("PredictFunction")
    return function.environment | {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "LD_LIBRARY_PATH": "/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib",
        "LAMBDA_TASK_ROOT": RUNTIME_TASK,
        "LAMBDA_RUNTIME_DIR": RUNTIME_DIR,
        "_HANDLER": function.handler,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{function.runtime}",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_LAMBDA_FUNCTION_NAME": function.logical_id,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_RUNTIME": function.runtime,  # ours, for the driver's version check
    }


def install(root: Path, built: Path) -> None:
    """The function to /var/task, the layer's content to /opt, the driver to /var/runtime: nothing else."""
    for folder, source in (("var/task", built / "PredictFunction"), ("opt", built / "OnnxRuntimeLayer")):
        shutil.rmtree(root / folder, ignore_errors=True)
        shutil.copytree(source, root / folder, symlinks=True)
    (root / "var/runtime").mkdir(parents=True, exist_ok=True)
    shutil.copy2(Path(__file__).with_name("rehearsal_driver.py"), root / "var/runtime/rehearsal_driver.py")


def run_handler(root: Path, arch: str, environment: dict[str, str], events: list[Any]) -> dict[str, Any]:
    command = [*rehearsal_root.python_command(root, arch), "-I", "-S", "-B", f"{RUNTIME_DIR}/rehearsal_driver.py"]
    result = subprocess.run(command, input=json.dumps(events), env=environment, capture_output=True, text=True)
    marked = [line for line in result.stdout.splitlines() if line.startswith("REHEARSAL ")]
    if not marked:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise RehearsalError(arch, f"the runtime's Python exited with {result.returncode}: {last}")
    answer: dict[str, Any] = json.loads(marked[-1].removeprefix("REHEARSAL "))
    return answer


def rehearse(arch: str, built: Path, card: dict[str, Any]) -> list[str]:
    """The lines to print for `arch`, or RehearsalError."""
    started = time.monotonic()
    lines = [f"{arch}: {checks.sizes(arch, built)}"]
    root = rehearsal_root.ensure(arch)
    environment = lambda_environment(built)
    install(root, built)
    events = checks.events(card)
    first = run_handler(root, arch, environment, [events["predict"], events["sample"], events["health"]])
    lines.insert(1, checks.interpreter(arch, first, environment["AWS_LAMBDA_RUNTIME"]))
    lines += checks.healthy(arch, first, card)
    model_file = root / "var/task/model/model.onnx"
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_file.write_bytes(bytes(data))
    lines.append(checks.tampered(arch, run_handler(root, arch, environment, [events["sample"]])))
    lines.append(f"  {arch} rehearsed in {time.monotonic() - started:.0f} s")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make rehearse", description=__doc__.splitlines()[0])
    parser.add_argument("--arch", action="append", choices=sorted(rehearsal_root.DEBIAN_ARCH))
    parser.add_argument("--bundle", type=Path, help="a bundle to promote (default: the tiny fixture bundle)")
    parser.add_argument("--built", type=Path, help="an existing sam build output (one --arch)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "rehearsal")
    args = parser.parse_args(argv)
    arches = args.arch or ["x86_64", "arm64"]
    if args.built and len(arches) != 1:
        parser.error("--built needs exactly one --arch")
    try:
        with tempfile.TemporaryDirectory(prefix="rehearsal-") as scratch:
            # The roots first: on an x86_64 host that root's python3.13 compiles the builds' bytecode.
            for arch in sorted({*arches, *(["x86_64"] if os.uname().machine == "x86_64" else [])}, reverse=True):
                rehearsal_root.ensure(arch)
            if args.built:
                builds = {arches[0]: args.built}
            else:
                bundle = args.bundle or checks.tiny_bundle(Path(scratch) / "bundle")
                project = Path(scratch) / "project"
                project.mkdir()
                copy_project(project, bundle)
                builds = {arch: sam_build(project, arch, args.out / arch) for arch in arches}
            for arch, built in builds.items():
                card = json.loads((built / "PredictFunction/model/model.json").read_text())
                print("\n".join(rehearse(arch, built, card)), flush=True)
    except RehearsalError as error:
        print(f"rehearsal failed: {error}", file=sys.stderr)
        return 1
    except (rehearsal_root.RootError, OSError, ValueError) as error:
        print(f"rehearsal failed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
