"""Throwaway copies of the project for tests that run `sml`: the real code, never the real model/ folder."""

import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import Message
from pathlib import Path

from sml.promote import promote

ROOT = Path(__file__).resolve().parents[1]
SML = Path(sys.executable).with_name("sml")


def run_sml(
    *args: str | Path,
    cwd: Path | None = None,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """`sml ARGS` as a user's shell runs it, in `cwd`; its output captured as text."""
    return subprocess.run(
        [str(SML), *map(str, args)],
        cwd=cwd,
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def echo_project(root: Path, app: str, template: str) -> Path:
    """A project under `root`: `template` as template.yaml and `app` as echo/app.py."""
    (root / "echo").mkdir()
    (root / "echo" / "app.py").write_text(app)
    (root / "template.yaml").write_text(template)
    return root


def copy_function(root: Path) -> Path:
    """functions/predict under `root`, without the model (and bytecode) this checkout holds."""
    target = root / "functions" / "predict"
    shutil.copytree(ROOT / "functions" / "predict", target, ignore=shutil.ignore_patterns("model", "__pycache__"))
    return target


def promoted_function(root: Path, bundle: Path) -> Path:
    """A copy of functions/predict under `root` with `bundle` promoted into its model/."""
    function_dir = copy_function(root)
    promote(str(bundle), function_dir)
    return function_dir


def predict_project(root: Path, bundle: Path, template: str | None = None) -> Path:
    """template.yaml (this checkout's unless `template` is given) and functions/predict serving `bundle`."""
    (root / "template.yaml").write_text((ROOT / "template.yaml").read_text() if template is None else template)
    promoted_function(root, bundle)
    return root


class LocalApi:
    """`sml serve` as a user runs it, in a subprocess, on a free port of 127.0.0.1; stderr goes to `log`."""

    def __init__(self, project: Path, log: Path) -> None:
        self.log = log
        self.log_file = log.open("w")
        self.process = subprocess.Popen(
            [str(SML), "serve", "--port", "0"], cwd=project, stderr=self.log_file, stdout=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while not (found := re.search(r"listening on (http://127\.0\.0\.1:\d+)", log.read_text())):
            assert self.process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        self.url = found.group(1)

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Message, bytes]:
        """(status, headers, body bytes) of one real HTTP request."""
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read()

    def stop(self, signum: int = signal.SIGTERM) -> int:
        self.process.send_signal(signum)
        code = self.process.wait(timeout=30)
        self.log_file.close()
        return code


@contextmanager
def serving(project: Path) -> Iterator[LocalApi]:
    """`sml serve` in `project` while the block runs; then it stops on SIGTERM and must exit 0."""
    server = LocalApi(project, project / "serve.log")
    try:
        yield server
    finally:
        code = server.stop()
    assert code == 0, server.log.read_text()
