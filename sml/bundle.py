"""Ask the function itself whether it can serve a bundle: its own loader, run on the staged copy.

functions/predict/model.py decides what can be served. `sml promote` keeps no copy of those checks: it
runs that loader in a process of its own, from the function's folder (first on sys.path, the working
directory, as Lambda's /var/task and `sml invoke` have it) and without `sml` or `training` imported into
it. A crash or hang of the loader on a hostile file stays in that process, and promote refuses the bundle.
"""

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sml.errors import UserError

# Twins of functions/predict/contract.py's names (sml never imports the function); tests hold them equal.
MODEL_FILE, CARD_FILE, INT8_FILE = "model.onnx", "model.json", "model.int8.onnx"
BUNDLE_FILES = (MODEL_FILE, CARD_FILE, INT8_FILE)
# A sealed model (`sml promote --kms-key`, sml/seal.py) in place of model.onnx; twins of contract.py's too.
ENCRYPTED_FILE, KEY_FILE = "model.onnx.enc", "model.key.json"
SERVED_FILES = (MODEL_FILE, CARD_FILE, INT8_FILE, ENCRYPTED_FILE, KEY_FILE)  # what a function's model/ may hold
LOADER_TIMEOUT_S = 300.0  # a large model's session and self-test take seconds; a hung loader must not block
# The child's whole program: import the function's loader, load the staged bundle, answer in one JSON line.
LOADER_CHECK = """
import json, sys
from pathlib import Path
function_dir, bundle = sys.argv[1], Path(sys.argv[2])
sys.path.insert(0, function_dir)
import model
try:
    loaded = model.load(bundle)
    model.check_int8(bundle, loaded.card)
except model.BundleError as error:
    print(json.dumps({"refused": str(error)}))
else:
    print(json.dumps({"card": loaded.card}))
"""


class BundleError(UserError):
    """The bundle breaks the contract the function's loader enforces; it must not be served."""


@dataclass(frozen=True)
class Bundle:
    path: Path
    card: dict[str, Any]
    files: tuple[str, ...]  # the bundle files present, model.onnx and model.json first


def check_with_function(function_dir: Path, bundle: Path, environment: dict[str, str] | None = None) -> Bundle:
    """Run the function's own loader (function_dir/model.py) on `bundle`; return the card it accepted.

    `environment` replaces the loader's (default: sml's own), e.g. to name the AWS region a sealed model's key is in.

    Raises:
        BundleError: the loader refused the bundle (its reason), or failed or hung on it.
    """
    loader = function_dir / "model.py"
    if not loader.is_file():
        raise UserError(f"{function_dir} has no model.py: pass the prediction function's folder with --function-dir")
    command = [sys.executable, "-I", "-B", "-c", LOADER_CHECK, str(function_dir.resolve()), str(bundle.resolve())]
    try:
        result = subprocess.run(
            command,
            cwd=function_dir,
            env=environment,
            capture_output=True,
            text=True,
            timeout=LOADER_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BundleError(f"{loader} did not load the bundle within {LOADER_TIMEOUT_S:g} s") from None
    answer = last_json_line(result.stdout)
    if "refused" in answer:
        raise BundleError(str(answer["refused"]))
    if result.returncode != 0 or not isinstance(answer.get("card"), dict):
        reason = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[-1]
        raise BundleError(f"{loader} failed on the bundle: {reason}")
    files = tuple(name for name in SERVED_FILES if (bundle / name).is_file())
    return Bundle(path=bundle, card=answer["card"], files=files)


def last_json_line(output: str) -> dict[str, Any]:
    try:
        answer = json.loads(output.strip().splitlines()[-1])
    except (IndexError, ValueError, RecursionError):
        return {}
    return answer if isinstance(answer, dict) else {}
