"""`sml endpoint predict`: send rows from a file to the deployed API, in batches it accepts."""

import argparse
import json
import logging
import os
from pathlib import Path

import boto3

from sml.aws import add_aws_arguments, aws_errors, aws_session, stack_for
from sml.endpoint import client
from sml.errors import UserError

ENDPOINT_EXAMPLES = (
    "sml endpoint predict --file rows.csv --out predictions.json\n"
    "  sml endpoint predict --file rows.json --url http://127.0.0.1:3000\n"
    "  sml endpoint predict --file rows.csv --stack-name serverless-ml-prod --profile prod"
)

logger = logging.getLogger("sml")


def configure_endpoint(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    predict = actions.add_parser(
        "predict",
        help="send rows to POST /predict",
        description="Send rows from a CSV or JSON file to the deployed API, in batches it accepts.",
        epilog=f"examples:\n  {ENDPOINT_EXAMPLES}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    predict.add_argument("--file", type=Path, required=True, help="rows.csv (a header picks columns) or rows.json")
    predict.add_argument("--out", type=Path, help="write the predictions here (default: print them)")
    predict.add_argument("--url", help="API base URL (default: the stack's ApiUrl)")
    predict.add_argument(
        "--auth",
        choices=client.AUTH_MODES,
        help="default: the stack's ApiAuth; with --url, iam for execute-api hosts, else none",
    )
    predict.add_argument("--token", help="JWT for --auth jwt (default: SML_API_TOKEN)")
    predict.add_argument(
        "--max-batch", type=int, default=client.DEFAULT_MAX_BATCH, help="rows per request (default: 256, MAX_BATCH)"
    )
    add_aws_arguments(predict)


def run_endpoint(args: argparse.Namespace) -> int:
    """`sml endpoint predict`: rows in, predictions out."""
    with aws_errors():
        api = endpoint_api(args)
        rows = client.read_rows(args.file, api)
        answer = client.predict(api, rows, args.max_batch)
    text = json.dumps(answer)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    model = answer.get("model") or {}
    where = f" -> {args.out}" if args.out else ""
    logger.info(
        "%d rows, %d requests, model %s %s%s",
        len(rows),
        api.requests_sent,
        model.get("name"),
        model.get("version"),
        where,
    )
    if "models" in answer:
        logger.warning(
            "note: answers came from %d model versions; a deployment is shifting traffic", len(answer["models"])
        )
    return 0


def endpoint_api(args: argparse.Namespace) -> client.Api:
    """The API's URL and auth mode from the flags, else from the stack's ApiUrl and ApiAuth outputs."""
    session: boto3.Session | None = None
    if args.url:
        url, auth = args.url, args.auth or client.default_auth(args.url)
    else:
        session = aws_session(args)
        stack = stack_for(args, session)
        url = stack.output("ApiUrl", "--url")
        auth = args.auth or client.STACK_AUTH.get(stack.output("ApiAuth", "--auth"), "iam")
    token = args.token or os.environ.get("SML_API_TOKEN")
    if auth == "jwt" and not token:
        raise UserError("the API takes JWT bearer tokens: pass --token or set SML_API_TOKEN")
    if auth == "iam" and session is None:
        session = aws_session(args)
    return client.Api(url=url, auth=auth, session=session, token=token)
