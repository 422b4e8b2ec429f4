"""Root filesystems of Debian with the Lambda runtime's Python, one per architecture, cached per machine.

    python scripts/rehearsal_root.py x86_64|arm64     # prints the root's path; builds it when missing or broken

`debootstrap --foreign` downloads Debian's python3 and everything it needs; `dpkg -x` unpacks every package
(no maintainer scripts, so the same on both architectures), and the root's own Python compiles its standard
library once, as Lambda's runtime ships it. x86_64 runs natively under chroot, arm64 under
`qemu-aarch64-static` (copied into the root, so no binfmt registration is needed). The Debian mirror is read
from this machine's apt configuration. Needs root, debootstrap and qemu-user-static; stdlib only.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

SUITE = "trixie"  # its python3 is 3.13, the Lambda runtime template.yaml names (tests hold them equal)
PYTHON_VERSION = "3.13"
DEBIAN_ARCH = {"x86_64": "amd64", "arm64": "arm64"}
QEMU = "/usr/bin/qemu-aarch64-static"
STAMP = ".rehearsal-root"
SOURCES = Path("/etc/apt")


class RootError(Exception):
    """The root cannot be built here; the message says why, in one line."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "serverless-ml" / "rehearsal"


def mirror(apt: Path = SOURCES) -> str:
    """The Debian archive this machine's apt uses (deb822 `.sources` or one-line `sources.list`), not security."""
    candidates: list[str] = []
    for sources in sorted((apt / "sources.list.d").glob("*.sources")):
        for stanza in sources.read_text().split("\n\n"):
            fields = dict(re.findall(r"^([\w-]+):\s*(.*)$", stanza, re.MULTILINE))
            if "security" not in fields.get("Suites", "") and fields.get("Enabled", "yes") != "no":
                candidates += fields.get("URIs", "").split()
    lists = [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*.list"))]
    for sources in filter(Path.is_file, lists):
        for match in re.finditer(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", sources.read_text(), re.MULTILINE):
            if "security" not in match[2]:
                candidates.append(match[1])
    debian = [uri for uri in candidates if uri.rstrip("/").endswith("/debian")]
    if not debian:
        raise RootError(f"no Debian mirror in {apt}/sources.list(.d): cannot debootstrap a rehearsal root")
    return debian[0]


def python_command(root: Path, arch: str) -> list[str]:
    """The command, run from the host, that starts the root's Python inside the root."""
    emulator = ["/usr/bin/qemu-aarch64-static"] if arch == "arm64" else []
    chroot = shutil.which("chroot") or "/usr/sbin/chroot"  # found on the host's PATH, not the runtime's
    return [chroot, str(root), *emulator, f"/usr/bin/python{PYTHON_VERSION}"]


def is_sound(root: Path, arch: str) -> bool:
    if not (root / STAMP).is_file():
        return False
    check = "import platform, sys, json, ctypes; print(sys.version.split()[0], platform.machine())"
    try:
        result = subprocess.run(
            [*python_command(root, arch), "-I", "-S", "-c", check], capture_output=True, text=True, timeout=120
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    machine = "aarch64" if arch == "arm64" else "x86_64"
    return (
        result.returncode == 0
        and result.stdout.split()[1:] == [machine]
        and (result.stdout.startswith(PYTHON_VERSION + "."))
    )


def build(root: Path, arch: str) -> None:
    for tool in ("debootstrap", "dpkg", "chroot", *([QEMU] if arch == "arm64" else [])):
        if shutil.which(tool) is None:
            raise RootError(f"{tool} is missing: apt-get install debootstrap qemu-user-static")
    shutil.rmtree(root, ignore_errors=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    command = ["debootstrap", "--foreign", "--variant=minbase", f"--arch={DEBIAN_ARCH[arch]}"]
    command += [f"--include=python{PYTHON_VERSION},python3", SUITE, str(partial), mirror()]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-1:] or ["no output"]
        raise RootError(f"debootstrap {SUITE} {arch} failed: {tail[0]}")
    archives = partial / "var" / "cache" / "apt" / "archives"
    for package in sorted(archives.glob("*.deb")):
        subprocess.run(["dpkg", "-x", str(package), str(partial)], check=True)
        package.unlink()
    if arch == "arm64":
        shutil.copy2(QEMU, partial / QEMU.lstrip("/"))
    stdlib = f"/usr/lib/python{PYTHON_VERSION}"
    host_python = cache_dir() / "bin" / f"python{PYTHON_VERSION}"  # the x86_64 root's, when ensured first
    if host_python.is_file():  # bytecode does not depend on the CPU: minutes faster than under qemu
        compile_stdlib = [str(host_python), "-m", "compileall", "-q", "-j", "0", "-s", str(partial), "-p", "/"]
        subprocess.run([*compile_stdlib, f"{partial}{stdlib}"], check=True)
    else:  # one process: the chroot has no /dev/shm for multiprocessing's locks
        subprocess.run([*python_command(partial, arch), "-I", "-m", "compileall", "-q", stdlib], check=True)
    (partial / STAMP).write_text(f"{SUITE} {arch} python{PYTHON_VERSION}\n")
    partial.rename(root)
    if not is_sound(root, arch):
        raise RootError(f"the {arch} root in {root} was built but its python{PYTHON_VERSION} does not run")


def write_interpreter(root: Path) -> Path:
    """`<cache>/bin/python3.13`: the x86_64 root's Python run from the host through the root's own loader, for
    the Makefiles to compile bytecode of the runtime's exact version (bytecode does not depend on the CPU)."""
    interpreter = cache_dir() / "bin" / f"python{PYTHON_VERSION}"
    libraries = f"{root}/lib/x86_64-linux-gnu:{root}/usr/lib/x86_64-linux-gnu"
    script = f"""#!/bin/sh
# Written by scripts/rehearsal_root.py: the rehearsal root's python{PYTHON_VERSION}, run from outside the root
# (not with -I or -E: it finds its standard library through PYTHONHOME).
# --argv0 makes this script sys.executable, so the processes of `compileall -j 0` start the same way.
exec env PYTHONHOME="{root}/usr" "{root}/lib64/ld-linux-x86-64.so.2" --argv0 "$0" --library-path "{libraries}" \\
    "{root}/usr/bin/python{PYTHON_VERSION}" "$@"
"""
    interpreter.parent.mkdir(parents=True, exist_ok=True)
    if not interpreter.is_file() or interpreter.read_text() != script:
        interpreter.write_text(script)
        interpreter.chmod(0o755)
    return interpreter


def ensure(arch: str) -> Path:
    """The cached root for `arch`, built first when it is missing or broken."""
    if arch not in DEBIAN_ARCH:
        raise RootError(f"architecture must be one of {sorted(DEBIAN_ARCH)}, not {arch}")
    root = cache_dir() / f"{SUITE}-{arch}"
    if not is_sound(root, arch):
        print(f"rehearsal: building the {arch} root in {root} (once per machine)", file=sys.stderr, flush=True)
        build(root, arch)
    if arch == "x86_64" and os.uname().machine == "x86_64":
        write_interpreter(root)
    return root


def main(argv: list[str]) -> int:
    try:
        for arch in argv or ["x86_64", "arm64"]:  # x86_64 first: its Python compiles arm64's stdlib
            print(ensure(arch))
    except (RootError, OSError, subprocess.CalledProcessError) as error:
        print(f"rehearsal root: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
