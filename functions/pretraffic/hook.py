"""CodeDeploy's pre-traffic check of a new predict function version: no traffic moves unless it passes.

CodeDeploy calls this function with {DeploymentId, LifecycleEventHookExecutionId} after publishing the
new version and before the live alias sends it any request. It invokes that version (PREDICT_VERSION_ARN,
set by template.yaml from PredictFunction.Version) as API Gateway would, reads the model card with
GET /model, POSTs the card's sample instances, and reports Succeeded only when the answer is a 200 with
the card's sample outputs within its tolerance. A 503, a wrong answer, an error or a timeout reports
Failed, with the reason in this function's log; CodeDeploy then stops the deployment and the alias
stays on the old version. boto3 only, from the Lambda runtime: no layer.
"""

import json
import logging
import math
import os
import time
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

# Twin of functions/predict/model.py's SAMPLE_TOLERANCE (tests/unit/test_pretraffic.py holds them equal):
# the new version passes this check exactly when its own loader accepted the card's sample at init. The
# card's export.parity_tolerance compares torch and onnxruntime on one machine; Lambda's arm64 sums in
# another order, so it would stop deployments of models that serve correctly.
SAMPLE_TOLERANCE = 1e-4
# An invoke waits for the version's init (at most 10 s) and its run (template.yaml's Timeout, at most
# 30 s); this function's own Timeout leaves room for two invokes and the report.
INVOKE_READ_TIMEOUT_S = 45
OUTPUT_BY_TASK = {"classification": "probabilities", "regression": "predictions"}

logger = logging.getLogger()
logger.setLevel(logging.INFO)


class CheckFailed(Exception):
    """The new version must not take traffic; the message says why."""


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, str]:
    version_arn = os.environ["PREDICT_VERSION_ARN"]
    deployment_id, hook_id = event["DeploymentId"], event["LifecycleEventHookExecutionId"]
    config = Config(connect_timeout=5, read_timeout=INVOKE_READ_TIMEOUT_S, retries={"total_max_attempts": 1})
    reason = check_version(boto3.client("lambda", config=config), version_arn, deployment_id)
    status = "Failed" if reason else "Succeeded"
    if reason:
        logger.error("pre-traffic check of %s failed: %s", version_arn, reason)
    else:
        logger.info("pre-traffic check of %s passed", version_arn)
    boto3.client("codedeploy").put_lifecycle_event_hook_execution_status(
        deploymentId=deployment_id, lifecycleEventHookExecutionId=hook_id, status=status
    )
    return {"status": status, "reason": reason or "the version answers the card's sample"}


def check_version(client: Any, version_arn: str, request_id: str) -> str | None:
    """None when the version at `version_arn` answers its card's sample; otherwise why not."""
    try:
        card = call(client, version_arn, api_event("GET", "/model", request_id))
        sample = card.get("sample")
        instances, outputs = (sample.get("instances"), sample.get("outputs")) if isinstance(sample, dict) else (0, None)
        if not instances or outputs is None:
            raise CheckFailed("the model card has no sample (instances and outputs) to check the version with")
        body = json.dumps({"instances": instances})
        answer = call(client, version_arn, api_event("POST", "/predict", request_id, body))
        compare(card, answer)
    except CheckFailed as failure:
        return str(failure)
    except (ClientError, BotoCoreError) as error:  # throttled, not allowed, read timeout, no connection
        return f"invoking {version_arn} failed: {error}"
    # Anything unforeseen still fails the deployment now, rather than after CodeDeploy's one-hour wait.
    except Exception as error:
        return f"the check itself failed: {type(error).__name__}: {error}"
    return None


def api_event(method: str, path: str, request_id: str, body: str | None = None) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event, shaped like events/model.json and events/predict.json."""
    now = time.time()
    headers = {"accept": "application/json", "user-agent": "serverless-ml-pretraffic"}
    if body is not None:
        headers |= {"content-type": "application/json", "content-length": str(len(body.encode()))}
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"},
            "requestId": f"pretraffic-{request_id}",
            "routeKey": f"{method} {path}",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if body is not None:
        event["body"] = body
    return event


def call(client: Any, version_arn: str, event: dict[str, Any]) -> dict[str, Any]:
    """Invoke the version with `event`; its JSON answer to a 200, or CheckFailed."""
    route = event["routeKey"]
    response = client.invoke(FunctionName=version_arn, InvocationType="RequestResponse", Payload=json.dumps(event))
    payload = response["Payload"].read()
    if response.get("FunctionError"):  # an exception, a crash, or Lambda's timeout (Sandbox.Timedout)
        error = json.loads(payload) if payload else {}
        kind, message = error.get("errorType", response["FunctionError"]), error.get("errorMessage", "")
        raise CheckFailed(f"{route} raised {kind}: {message}")
    reply = json.loads(payload)
    status, body = reply.get("statusCode"), json.loads(reply.get("body") or "null")
    if status != 200:
        detail = body.get("error", {}).get("message", "") if isinstance(body, dict) else ""
        raise CheckFailed(f"{route} answered {status}: {detail}")
    if not isinstance(body, dict):
        raise CheckFailed(f"{route} answered 200 without a JSON object")
    return body


def compare(card: dict[str, Any], answer: dict[str, Any]) -> None:
    """The answer to the card's sample must carry the card's outputs, labels and version."""
    task = card.get("task")
    if task not in OUTPUT_BY_TASK:
        raise CheckFailed(f"the model card's task {task!r} is not one of {sorted(OUTPUT_BY_TASK)}")
    rows, sample_rows = answer.get(OUTPUT_BY_TASK[task]), card["sample"]["outputs"]
    got, want = flatten(rows), flatten(sample_rows)
    if not (isinstance(rows, list) and isinstance(sample_rows, list) and len(rows) == len(sample_rows)):
        raise CheckFailed(f"POST /predict answered {OUTPUT_BY_TASK[task]} for another number of rows than the sample")
    if got is None or want is None or len(got) != len(want):
        raise CheckFailed(f"POST /predict answered {OUTPUT_BY_TASK[task]} of another shape than the card's sample")
    tolerance = SAMPLE_TOLERANCE
    error = max((abs(g - w) / max(1.0, abs(w)) for g, w in zip(got, want, strict=True)), default=0.0)
    if not error <= tolerance:
        raise CheckFailed(
            f"POST /predict differs from the card's sample outputs by {error:.3g} (tolerance {tolerance:g})"
        )
    if task == "classification" and answer.get("labels") != card.get("labels"):
        raise CheckFailed("POST /predict answered other labels than the card's")
    served = (answer.get("model") or {}).get("version")
    if served != card.get("version"):
        raise CheckFailed(f"POST /predict was answered by model {served!r}, not the card's {card.get('version')!r}")


def flatten(values: Any) -> list[float] | None:
    """Nested lists of numbers as one flat list, or None when anything in them is not a finite number."""
    if isinstance(values, (int, float)) and not isinstance(values, bool):
        return [float(values)] if math.isfinite(values) else None
    if not isinstance(values, list):
        return None
    flat: list[float] = []
    for item in values:
        part = flatten(item)
        if part is None:
            return None
        flat += part
    return flat
