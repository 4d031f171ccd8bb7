"""Recent use of IAM users, roles, groups and policies (R1.2).

IAM's "last accessed" data (GenerateServiceLastAccessedDetails, then
GetServiceLastAccessedDetails) says which services an entity authenticated
to, and when. c7n's ``usage`` filter reads it, but polls forever when a job
fails (``JobStatus: FAILED``) and does not say which services matched. This
filter reads the same data, bounds the wait, raises on a failed job, and
annotates the services used since the incident started. Jobs are started, and
polled, two calls at a time (as c7n's IAM detail filters call IAM): one after another,
an account with hundreds of roles waited a round trip per role, twice, in the global
region every sweep waits for.
"""
import time

from c7n.exceptions import PolicyExecutionError
from c7n.resources.iam import ServiceUsage
from c7n.utils import local_session, type_schema

from custodian_ext.filters.options import aware, check_timestamp
from custodian_ext.registry import register_filter

# Module attributes so tests can replace them.
sleep = time.sleep
clock = time.monotonic
WORKERS = 2  # IAM calls in flight per policy; IAM throttles bursts ("Rate exceeded")


@register_filter('used-since', ['iam-user', 'iam-role', 'iam-group', 'iam-policy'])
class UsedSince(ServiceUsage):
    """IAM entities that authenticated to any AWS service at or after ``since``.

    ``c7n:used-since`` lists each such service with when, from which region and
    (for groups and policies) by which entity. IAM updates this data within
    about four hours, so the newest activity may be missing; CloudTrail (R2.2)
    has it.

    Jobs are polled every ``poll-delay`` seconds (default 1) for at most
    ``max-wait`` seconds (default 300); a job that fails or is still running
    then is an error, never "not used".

    :example:

    .. code-block:: yaml

        policies:
          - name: r1-2-iam-users-used-since-incident
            resource: aws.iam-user
            filters:
              - type: used-since
                since: '{incident_start}'
    """

    schema = type_schema(
        'used-since', required=['since'], since={'type': 'string'},
        **{'poll-delay': {'type': 'number', 'minimum': 0},
           'max-wait': {'type': 'number', 'minimum': 1}})
    schema_alias = False
    annotation_key = 'c7n:used-since'

    def validate(self):
        check_timestamp(self)
        return self

    def process(self, resources, event=None):
        client = local_session(self.manager.session_factory).client('iam')
        since = aware(self.data['since'])

        def generate(arn):
            try:
                return self.manager.retry(
                    client.generate_service_last_accessed_details, Arn=arn)['JobId']
            except client.exceptions.NoSuchEntityException:
                return None  # deleted since it was listed

        def get(jid):
            return self.manager.retry(client.get_service_last_accessed_details, JobId=jid)

        arns = self.manager.get_arns(resources)
        with self.executor_factory(max_workers=WORKERS) as w:
            started = list(w.map(generate, arns))
        jobs = {jid: (arn, r) for jid, arn, r in zip(started, arns, resources) if jid}

        delay = self.data.get('poll-delay', 1)
        deadline = clock() + self.data.get('max-wait', 300)
        results = []
        while jobs:
            ids = list(jobs)
            with self.executor_factory(max_workers=WORKERS) as w:
                answers = list(zip(ids, w.map(get, ids)))
            for jid, result in answers:
                status = result['JobStatus']
                if status == 'FAILED':
                    err = result.get('Error') or {}
                    raise PolicyExecutionError(
                        f"IAM last-accessed job for {jobs[jid][0]} failed: "
                        f"{err.get('Code', '?')}: {err.get('Message', '')}")
                if status != self.JOB_COMPLETE:
                    continue
                arn, r = jobs.pop(jid)
                used = []
                for s in result.get('ServicesLastAccessed', ()):
                    when = s.get('LastAuthenticated')
                    if when and aware(when) >= since:
                        used.append({
                            'ServiceNamespace': s.get('ServiceNamespace'),
                            'LastAuthenticated': aware(when).strftime('%Y-%m-%dT%H:%M:%SZ'),
                            'LastAuthenticatedRegion': s.get('LastAuthenticatedRegion'),
                            'LastAuthenticatedEntity': s.get('LastAuthenticatedEntity')})
                if used:
                    r[self.annotation_key] = sorted(
                        used, key=lambda u: u['LastAuthenticated'], reverse=True)
                    results.append(r)
            if jobs:
                if clock() >= deadline:
                    raise PolicyExecutionError(
                        f"IAM last-accessed jobs not complete after "
                        f"{self.data.get('max-wait', 300)}s for: "
                        + ', '.join(a for a, _ in list(jobs.values())[:5]))
                sleep(delay)
        return results
