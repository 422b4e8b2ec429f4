"""Runs inside a rehearsal root, on its Python, as Lambda's runtime would: the built handler, nothing else.

scripts/rehearse.py copies this file to the root's /var/runtime, the function to /var/task and the layer to
/opt, and starts `python3.X -I -S -B /var/runtime/rehearsal_driver.py` with Lambda's environment. Events (a JSON
list) come on stdin; the last stdout line is `REHEARSAL {json}`. Standard library only, like the runtime.
"""

import importlib
import json
import os
import platform
import sys
from pathlib import Path

MARK = "REHEARSAL "
VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
# Lambda's own order: the function, then the layer's two folders, then the runtime's standard library.
sys.path[:0] = ["/var/task", f"/opt/python/lib/python{VERSION}/site-packages", "/opt/python"]
ALLOWED = (sys.base_prefix + "/", "/var/task/", "/opt/", "/var/runtime/")  # the last: this driver


class Context:
    function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "function")
    memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
    invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
    aws_request_id = "rehearsal"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


def report(**fields: object) -> None:
    print(MARK + json.dumps(fields), flush=True)


def main() -> int:
    events = json.load(sys.stdin)
    module_name, _, function_name = os.environ["_HANDLER"].rpartition(".")
    facts = {"python": platform.python_version(), "machine": platform.machine()}
    try:
        handler = getattr(importlib.import_module(module_name), function_name)
    except Exception as error:  # Lambda's Runtime.ImportModuleError: every request would fail
        report(**facts, import_error=f"{type(error).__name__}: {error}")
        return 1
    answers = [handler(event, Context()) for event in events]
    outside = sorted(
        name
        for name, module in sys.modules.items()
        if getattr(module, "__file__", None) and not str(module.__file__).startswith(ALLOWED)
    )
    # Lambda cannot write bytecode (-B here): a built module without its .pyc is compiled at every cold start.
    uncompiled = sorted(
        name
        for name, module in sys.modules.items()
        if str(getattr(module, "__file__", "")).startswith(("/var/task/", "/opt/"))
        and getattr(module, "__cached__", None)
        and not Path(module.__cached__).is_file()
    )
    report(**facts, answers=answers, outside=outside, uncompiled=uncompiled)
    return 0


if __name__ == "__main__":
    sys.exit(main())
