"""A finding's resource as AWS names it: its ARN, and its Security Hub (ASFF) resource type.

Computed from c7n's own resource metadata, as c7n's ``get_arns`` does: the
resource's ARN field when the type has one, else an ARN built from the
service, the region, the account and the id. The account itself has no ARN;
Security Hub names it ``AWS::::Account:<id>``.
"""
import re

from c7n.utils import generate_arn, get_partition

ACCOUNT_TYPES = ('aws.account', 'aws.account-region')


def _model(resource_type):
    try:
        from c7n.provider import get_resource_class
        from c7n.resources import load_resources
        load_resources((resource_type,))
        return get_resource_class(resource_type).resource_type
    except Exception:
        return None


def resource_arn(resource_type, resource, rid, account_id, region):
    """The resource's ARN, or None when c7n cannot name one."""
    if resource_type in ACCOUNT_TYPES:
        return None
    m = _model(resource_type)
    if m is None:
        return rid if str(rid).startswith('arn:') else None
    arn_key = getattr(m, 'arn', None)
    if arn_key is False:
        return None
    if arn_key:
        value = resource.get(arn_key) if isinstance(resource, dict) else None
        if isinstance(value, str) and value.startswith('arn:'):
            return value
    rid = str(rid)
    if rid.startswith('arn:'):
        return rid
    if not account_id or rid == '?':
        return None
    service = getattr(m, 'arn_service', None) or m.service
    # S3 bucket ARNs name neither region nor account: arn:aws:s3:::bucket
    return generate_arn(service, rid, partition=get_partition(region or 'us-east-1'),
                        region='' if m.global_resource else region,
                        account_id='' if service == 's3' else account_id,
                        resource_type=m.arn_type, separator=m.arn_separator)


def asff_type(resource_type):
    """``AWS::IAM::User`` -> ``AwsIamUser``; ``Other`` when c7n has no CloudFormation type."""
    if resource_type in ACCOUNT_TYPES:
        return 'AwsAccount'
    m = _model(resource_type)
    cfn = getattr(m, 'cfn_type', None) if m is not None else None
    if not cfn:
        return 'Other'
    return ''.join(_asff_part(p) for p in cfn.split('::') if p) or 'Other'


def _asff_part(part):
    # AWS -> Aws, EC2 -> Ec2, DBInstance -> DbInstance, CloudTrail stays
    part = re.sub(r'[^A-Za-z0-9]', '', part)
    if part.upper() == part:
        return part.capitalize()
    return re.sub(r'^([A-Z])([A-Z]+)(?=[A-Z][a-z])', lambda m: m.group(1) + m.group(2).lower(),
                  part)


def asff_id(resource_type, arn, rid, account_id):
    """The ASFF ``Resources[].Id``: the ARN, ``AWS::::Account:<id>`` for the account."""
    if resource_type in ACCOUNT_TYPES:
        return f"AWS::::Account:{account_id or rid}"
    return arn or str(rid)
