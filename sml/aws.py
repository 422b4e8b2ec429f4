"""AWS sessions for the `sml` commands: --profile and --region read as SAM and the AWS CLI read them.

Every AWS call runs inside `aws_errors()`, which turns what botocore raises for a missing profile, absent
or expired credentials, an unreachable endpoint or a refused request into one readable UserError line.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import boto3
from botocore import exceptions as botocore_errors
from botocore.config import Config

from sml.errors import UserError

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
