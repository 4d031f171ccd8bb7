"""The credentials preflight: fail fast, in one line, when no API call could succeed.

A leaf module (botocore only). Applied by the patches to runs of the pack's
policies only (``custodian_ext.policyfiles.is_pack_policy``).
"""
from custodian_ext.errors import PackError

NO_CREDENTIALS = ('no AWS credentials found; set AWS_PROFILE, or AWS_ACCESS_KEY_ID and '
                  'AWS_SECRET_ACCESS_KEY, or run with an instance or task role')


def preflight(session, region):
    """The caller's identity (sts:GetCallerIdentity), or PackError with what to fix."""
    import botocore.exceptions as bexc
    try:
        if session.get_credentials() is None:
            raise PackError(NO_CREDENTIALS)
        return session.client('sts', region_name=region).get_caller_identity()
    except bexc.ProfileNotFound as e:
        raise PackError(f"{e}; check --profile or AWS_PROFILE") from None
    except (bexc.EndpointConnectionError, bexc.ConnectTimeoutError) as e:
        raise PackError(
            f"cannot reach AWS ({e}); check the network, or AWS_ENDPOINT_URL if set") from None
    except bexc.NoCredentialsError:
        raise PackError(NO_CREDENTIALS) from None
    except bexc.ClientError as e:
        err = e.response.get('Error', {})
        raise PackError(
            f"AWS rejected the credentials ({err.get('Code')}: {err.get('Message')}); "
            f"refresh them or pick another profile") from None


def check_org_credentials(accounts_config):
    """c7n-org assumes each account's role with the caller's credentials: they must work."""
    if not any(a.get('role') for a in accounts_config.get('accounts') or ()):
        return
    import boto3
    session = boto3.Session()
    try:
        preflight(session, session.region_name or 'us-east-1')
    except PackError as e:
        raise PackError(f"{e} (c7n-org assumes each account's role with them)") from None
