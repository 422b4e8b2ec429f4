"""AWS for the `sml` commands: --profile, --region, --stack-name, --config-file and --config-env read as SAM and
the AWS CLI read them.

Every location (queue, job definition, role, bucket, image, API URL) comes from a flag or else from the
deployed stack's outputs; the stack is the one samconfig.toml names, in its region, as `sam deploy` reads it.

Every AWS call runs inside `aws_errors()`, which turns what botocore raises for a missing profile, absent
or expired credentials, an unreachable endpoint or a refused request into one readable UserError line.
"""

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
from botocore import exceptions as botocore_errors
from botocore.config import Config

from sml.errors import UserError
from sml.stack import SAMCONFIG, SAMCONFIG_ENVIRONMENT, SamConfig, Stack, read_samconfig

DEFAULT_REGION = "us-east-1"  # where S3 requests start when nothing names a region; S3 redirects to the bucket's

CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, user_agent_extra="sml")
EXPIRED_CODES = {"ExpiredToken", "ExpiredTokenException", "RequestExpired"}
REJECTED_CODES = {
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AuthFailure",
}
NO_CREDENTIALS = "no AWS credentials found: run `aws configure` or `aws sso login`, set AWS_PROFILE, or pass --profile"


def open_session(profile: str | None, region: str | None) -> boto3.Session:
    """A session for `profile` (else AWS_PROFILE / the default chain) in `region` (else the profile's region).

    Raises:
        UserError: the profile does not exist, or no region is set anywhere.
    """
    try:
        session = boto3.Session(profile_name=profile, region_name=region)
    except botocore_errors.ProfileNotFound:
        raise UserError(
            f"AWS profile {profile!r} not found; create it with `aws configure --profile {profile}`"
        ) from None
    if not session.region_name:
        raise UserError("no AWS region: pass --region, set AWS_REGION, or set a region in your AWS profile")
    return session


def default_region(flag: str | None = None) -> str:
    """--region, else AWS_REGION, else AWS_DEFAULT_REGION, else us-east-1."""
    return flag or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def add_aws_arguments(parser: argparse.ArgumentParser, stack: bool = True) -> None:
    """--profile, --region and (for commands that read the stack) --stack-name, as SAM and the AWS CLI spell them."""
    group = parser.add_argument_group("AWS")
    group.add_argument("--profile", help="AWS profile (default: samconfig.toml's, else AWS_PROFILE or default)")
    group.add_argument("--region", help="AWS region (default: samconfig.toml's, else AWS_REGION or the profile's)")
    if stack:
        group.add_argument("--stack-name", help="the deployed stack (default: stack_name in samconfig.toml)")
    group.add_argument(
        "--config-file",
        type=Path,
        metavar="FILE",
        help=f"SAM config file to read stack_name, region and profile from, as `sam deploy` (default: {SAMCONFIG})",
    )
    group.add_argument(
        "--config-env",
        metavar="ENV",
        help=f"environment (table) of the SAM config file to read, as `sam deploy` (default: {SAMCONFIG_ENVIRONMENT})",
    )


def samconfig_for(args: argparse.Namespace) -> SamConfig:
    """The SAM config environment that --config-file/--config-env name, else samconfig.toml's [default]."""
    path = getattr(args, "config_file", None)
    environment = getattr(args, "config_env", None)
    return read_samconfig(
        path or SAMCONFIG, environment or SAMCONFIG_ENVIRONMENT, explicit=path is not None or environment is not None
    )


def aws_session(args: argparse.Namespace, region_required: bool = True) -> boto3.Session:
    """--profile/--region, else samconfig.toml's (as `sam deploy` reads them), else the AWS CLI's defaults."""
    samconfig = samconfig_for(args)
    region = args.region or samconfig.region
    if not region and not region_required:
        region = default_region()
    return open_session(args.profile or samconfig.profile, region)


def stack_for(args: argparse.Namespace, session: boto3.Session) -> Stack:
    """--stack-name, else samconfig.toml's stack_name; described only when a flag leaves an output to read."""
    return Stack(session, args.stack_name or samconfig_for(args).stack_name)


@contextmanager
def aws_errors() -> Iterator[None]:
    """Re-raise botocore's credential, connection and service errors as one-line UserErrors."""
    try:
        yield
    except botocore_errors.NoCredentialsError:
        raise UserError(NO_CREDENTIALS) from None
    except botocore_errors.PartialCredentialsError as error:
        raise UserError(f"incomplete AWS credentials: {error}") from None
    except (botocore_errors.SSOError, botocore_errors.TokenRetrievalError):
        raise UserError("your AWS SSO session has expired or is missing: run `aws sso login`") from None
    except botocore_errors.ProfileNotFound as error:
        raise UserError(f"{error}; create it with `aws configure --profile NAME`") from None
    except botocore_errors.EndpointConnectionError as error:
        raise UserError(f"cannot reach {error.kwargs.get('endpoint_url')}: check your network and --region") from None
    except botocore_errors.ClientError as error:
        raise UserError(describe_client_error(error)) from None
    except botocore_errors.ParamValidationError as error:
        raise UserError(" ".join(str(error).split())) from None


def describe_client_error(error: botocore_errors.ClientError) -> str:
    """AWS's refusal in one line, with the fix for the credential problems everyone meets."""
    code = error.response.get("Error", {}).get("Code", "Unknown")
    message = error.response.get("Error", {}).get("Message", "")
    if code in EXPIRED_CODES:
        return "your AWS credentials have expired: refresh them (`aws sso login`, or new keys) and retry"
    if code in REJECTED_CODES:
        return f"AWS did not accept your credentials ({code}): check the profile or keys in use"
    return f"AWS refused {error.operation_name}: {code}: {' '.join(message.split())}"
