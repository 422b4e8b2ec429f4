"""A warm local 'container' for one function: a child process (sml.local.runtime) that inits once and runs invocations.

Why a child process and not an import into `sml` itself: each function gets its own environment variables,
sys.path and module namespace (two functions may both have an `app.py`), its stdout logs cannot mix with the
JSON that `sml invoke` prints, and a handler that hangs past its Timeout can be killed, as Lambda kills it.
"""

import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sml.errors import UserError
from sml.local.cloudformation import ACCOUNT_ID
from sml.local.template import Function

MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # Lambda's limit on a synchronous invocation's event, and on its reply
INIT_TIMEOUT_S = 60.0  # generous: a laptop imports onnxruntime more slowly than Lambda does
PASSED_THROUGH = ("PATH", "HOME", "LANG", "TMPDIR", "SYSTEMROOT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                  "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
                  "AWS_ENDPOINT_URL")  # fmt: skip


@dataclass(frozen=True)
class Invocation:
    request_id: str
    result: Any  # the handler's return value, when it returned
    error: dict[str, Any] | None  # Lambda's error payload, when it raised, timed out or could not init
    duration_ms: float


def lambda_environment(function: Function, region: str, overrides: dict[str, str]) -> dict[str, str]:
    """What the function sees in os.environ: template values, --env-vars overrides, then Lambda's own."""
    environment = {name: os.environ[name] for name in PASSED_THROUGH if name in os.environ}
    environment["POWERTOOLS_TRACE_DISABLED"] = "true"  # no X-Ray daemon to send traces to
    environment |= function.environment | overrides
    name = function.logical_id
    return environment | {
        "AWS_SAM_LOCAL": "true",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{function.runtime}",
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(int(function.timeout_s)),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}",
        "LAMBDA_TASK_ROOT": str(function.code_dir),
        "SML_FUNCTION_ARN": f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{name}",
        "_HANDLER": function.handler,
        "PYTHONUNBUFFERED": "1",
        "TZ": ":UTC",
    }


def read_env_vars_file(path: Path, function: Function) -> tuple[dict[str, str], list[str]]:
    """SAM's --env-vars JSON: {"Parameters": {...}} for every function, {"<LogicalId>": {...}} for one.

    As in `sam local`, only variables the template declares are set; the rest come back as notes.
    """
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"--env-vars file {path} not found") from None
    except json.JSONDecodeError as error:
        raise UserError(f"--env-vars file {path} is not valid JSON: {error}") from None
    if not isinstance(document, dict) or not all(isinstance(v, dict) for v in document.values()):
        raise UserError(f'--env-vars file {path} must look like {{"{function.logical_id}": {{"NAME": "value"}}}}')
    overrides: dict[str, str] = {}
    notes = []
    for name, value in (document.get("Parameters", {}) | document.get(function.logical_id, {})).items():
        if name not in function.declared_env:
            notes.append(f"--env-vars: {name} is not declared in the template's Environment; ignored (as sam does)")
        elif not isinstance(value, str | int | float | bool):
            raise UserError(f"--env-vars: {name} must be a string, got {type(value).__name__}")
        else:
            overrides[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return overrides, notes


class FunctionWorker:
    """One warm container: started on the first invocation, reused after, restarted after a timeout or crash."""

    def __init__(self, function: Function, environment: dict[str, str]) -> None:
        self.function = function
        self.environment = environment
        self._process: subprocess.Popen[str] | None = None
        self._replies: queue.Queue[str | None] = queue.Queue()
        self._lock = threading.Lock()  # a container runs one invocation at a time

    def invoke(self, event: Any) -> Invocation:
        request_id = str(uuid.uuid4())
        started = time.perf_counter()
        with self._lock:
            error = self._start() if self._process is None else None
            result = None
            if error is None:
                result, error = self._run(event, request_id)
        if error is not None:
            error = {**error, "requestId": request_id}
        return Invocation(request_id, result, error, (time.perf_counter() - started) * 1000)

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _start(self) -> dict[str, Any] | None:
        if not self.function.code_dir.is_dir():
            raise UserError(f"{self.function.logical_id}: CodeUri folder {self.function.code_dir} not found")
        self._replies = queue.Queue()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "sml.local.runtime", self.function.handler],
            cwd=self.function.code_dir,
            env=self.environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        threading.Thread(target=_read_replies, args=(self._process, self._replies), daemon=True).start()
        reply = self._next_reply(INIT_TIMEOUT_S, "init")
        if "error" in reply:
            self._stop()
            return dict(reply["error"])
        return None

    def _run(self, event: Any, request_id: str) -> tuple[Any, dict[str, Any] | None]:
        assert self._process is not None and self._process.stdin is not None
        deadline_ms = int(time.time() * 1000 + self.function.timeout_s * 1000)
        message = {"event": event, "request_id": request_id, "deadline_ms": deadline_ms}
        try:
            self._process.stdin.write(json.dumps(message) + "\n")
            self._process.stdin.flush()
        except BrokenPipeError:
            pass  # the child died; _next_reply reports how
        reply = self._next_reply(self.function.timeout_s, request_id)
        if "error" in reply and reply.get("fatal"):
            self._stop()
        return reply.get("result"), reply.get("error")

    def _next_reply(self, timeout_s: float, request_id: str) -> dict[str, Any]:
        try:
            line = self._replies.get(timeout=timeout_s)
        except queue.Empty:
            stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            message = f"{stamp} {request_id} Task timed out after {timeout_s:.2f} seconds"
            return {"error": {"errorMessage": message, "errorType": "Sandbox.Timedout"}, "fatal": True}
        if line is None:
            assert self._process is not None
            code = self._process.wait()
            message = f"RequestId: {request_id} Error: Runtime exited with error: exit status {code}"
            return {"error": {"errorMessage": message, "errorType": "Runtime.ExitError"}, "fatal": True}
        if len(line) > MAX_PAYLOAD_BYTES + len('{"result": }\n'):
            message = f"Response payload size exceeded maximum allowed payload size ({MAX_PAYLOAD_BYTES} bytes)."
            return {"error": {"errorMessage": message, "errorType": "Function.ResponseSizeTooLarge"}}
        reply: dict[str, Any] = json.loads(line)
        return reply

    def _stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None


def _read_replies(process: "subprocess.Popen[str]", replies: "queue.Queue[str | None]") -> None:
    assert process.stdout is not None
    for line in process.stdout:
        replies.put(line)
    replies.put(None)  # the child exited
