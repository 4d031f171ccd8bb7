"""Activity review (R2.2, X1): what suspect credentials did, from CloudTrail, classified.

See ``custodian_ext.activity`` for the parts: ``suspects`` (where suspicion
starts, and the chain of credentials it leads to), ``sources`` (event history
and trail log files, the same records from both), ``review`` (the rounds per
region) and ``catalogue`` (ATT&CK tactic, technique and severity per call).
"""
import datetime

from c7n.exceptions import PolicyValidationError
from c7n.filters import Filter
from c7n.utils import local_session, type_schema

import custodian_ext.notices as notices
from custodian_ext.activity import known as known_mod
from custodian_ext.activity import records, review, sources, suspects
from custodian_ext.filters import event_history
from custodian_ext.filters.options import aware, check_timestamp, list_option
from custodian_ext.incomplete import mark as mark_incomplete
from custodian_ext.registry import register_filter
from custodian_ext.settings import is_placeholder

LIST_OR_SETTING = {'oneOf': [{'type': 'string'}, {'type': 'array', 'items': {
    'oneOf': [{'type': 'string'}, {'type': 'array', 'items': {'type': 'string'}}]}}]}
SEVERITIES = list(records.SEVERITIES)


def load_catalogue():
    """The pack's activity catalogue (``custodian_ext/data/activity-catalogue.yml``)."""
    from custodian_ext.activity import catalogue
    return catalogue.load()


def sensitive_event_names(catalogue):
    """(names event history can look up, entry ids it cannot: their names are patterns)."""
    names, patterns = set(), []
    for entry in catalogue:
        if not entry.classification.sensitive:
            continue
        exact = [n for n in entry.names if '*' not in n]
        names.update(exact)
        if len(exact) < len(entry.names):
            patterns.append(entry.classification.id)
    return sorted(names), patterns


@register_filter('activity', ['account-region'])
class Activity(Filter):
    """What suspect credentials did since ``since``, from CloudTrail, classified (R2.2, X1).

    Runs on ``aws.account-region`` (one resource per region swept): each region
    is reviewed in its own records, and the global-events region (us-east-1)
    also holds the IAM, STS (global endpoint) and Organizations calls.

    Suspect credentials (``suspects``, default all): ``quarantine`` (every key
    of a user carrying AWS's quarantine marker), ``notices`` (keys named by AWS
    Health or Trusted Advisor), ``setting`` (``suspect-access-keys``) and
    ``unknown-principals`` (callers of ``AssumeRole`` / ``GetFederationToken``
    / ``GetSessionToken`` outside ``known-users`` / ``known-roles`` /
    ``known-accounts``, as R2.2 judges them); and what they lead to: sessions
    they were issued, keys they created, sessions of roles they created or
    backdoored (``custodian_ext.activity.suspects``).

    The resource matches when a suspect credential did something the catalogue
    rates ``min-severity`` (default ``medium``) or above, when a principal that
    is not known made a sensitive read (``sensitive-reads``, default true), or
    when the review is incomplete (a lookup cut short, a source that could not
    be read): an incomplete review is never reported as clean.

    ``c7n:activity`` lists the events (each with its event id, time, region,
    principal, access key, source IP, user agent, error code, resources,
    ATT&CK tactic and technique, severity, which suspect credential and why,
    and the source it came from); ``c7n:activity-coverage`` says what was
    read: sources, window, regions, whether data events were recorded, what
    was cut short, and notes. Sources (``source``): ``event-history``,
    ``trail-logs`` or ``auto`` (trail logs when a readable trail covers the
    region and the window is long or the trail records data events).

    :example:

    .. code-block:: yaml

        policies:
          - name: r2-2-suspect-credential-activity
            resource: aws.account-region
            filters:
              - type: activity
                since: '{incident_start}'
                known-users: '{known_users}'
                known-roles: '{known_roles}'
                known-accounts: ['{trusted_accounts}', '{known_accounts}']
                suspect-access-keys: '{suspect_access_keys}'
                min-severity: medium
    """

    # LookupEvents at 2/s per account-region, and every region's review waits for the
    # global-events region's: the longest chain of a sweep, started before other paced filters
    paced = 2

    schema = type_schema(
        'activity',
        required=['since'],
        since={'type': 'string'},
        source={'enum': [review.AUTO, review.EVENT_HISTORY, review.TRAIL_LOGS]},
        suspects={'type': 'array', 'items': {'enum': list(suspects.KINDS)}},
        **{'known-users': LIST_OR_SETTING, 'known-roles': LIST_OR_SETTING,
           'known-accounts': LIST_OR_SETTING, 'suspect-access-keys': LIST_OR_SETTING,
           'min-severity': {'enum': SEVERITIES},
           'sensitive-reads': {'type': 'boolean'},
           'max-pages': {'type': 'integer', 'minimum': 1, 'maximum': event_history.MAX_PAGES},
           'max-depth': {'type': 'integer', 'minimum': 0, 'maximum': 10}})
    schema_alias = False
    annotation_key = 'c7n:activity'
    coverage_key = 'c7n:activity-coverage'

    def get_permissions(self):
        kinds = self.kinds()
        perms = ['cloudtrail:LookupEvents', 'cloudtrail:DescribeTrails',
                 'cloudtrail:GetTrailStatus', 'cloudtrail:GetEventSelectors']
        if self.data.get('source') != review.EVENT_HISTORY:
            perms += ['s3:ListBucket', 's3:GetObject']
        if suspects.QUARANTINE in kinds:
            perms += ['iam:GetAccountAuthorizationDetails', 'iam:ListAccessKeys']
        if suspects.NOTICES in kinds:
            perms += ['health:DescribeEvents', 'health:DescribeAffectedEntities',
                      'support:DescribeTrustedAdvisorCheckResult']
        return perms

    def validate(self):
        check_timestamp(self)
        for k in ('known-users', 'known-roles', 'known-accounts', 'suspect-access-keys'):
            v = self.data.get(k)
            if isinstance(v, str) and not is_placeholder(v):
                raise PolicyValidationError(
                    f"{self.type}: {k} must be a list (or a {{variable}} holding one), got {v!r}")
        for k in list_option(self.data, 'suspect-access-keys'):
            if not is_placeholder(k) and not notices.KEY_ID_RE.match(k):
                raise PolicyValidationError(
                    f"{self.type}: suspect-access-keys: {k!r} is not an access key id "
                    f"(like AKIAIOSFODNN7EXAMPLE)")
        if self.manager is not None and self.manager.type != 'account-region':
            raise PolicyValidationError(
                f"{self.type} runs on aws.account-region (one resource per region swept), "
                f"not {self.manager.type}")
        return self

    def kinds(self):
        return tuple(self.data.get('suspects', suspects.KINDS))

    def options(self):
        config = self.manager.config
        now = datetime.datetime.now(datetime.timezone.utc)
        since = aware(self.data['since'])
        start = event_history.window_start(since, now)
        known = known_mod.KnownPrincipals(
            config.account_id, tuple(list_option(self.data, 'known-users')),
            tuple(list_option(self.data, 'known-roles')),
            tuple(list_option(self.data, 'known-accounts')))
        return review.Options(
            account_id=config.account_id, region=config.region,
            global_region=event_history.global_event_region(config.region),
            start=start, end=now, known=known, kinds=self.kinds(),
            listed_keys=tuple(list_option(self.data, 'suspect-access-keys')),
            source=self.data.get('source', review.AUTO),
            sensitive=self.data.get('sensitive-reads', True),
            max_pages=self.data.get('max-pages', event_history.DEFAULT_PAGES),
            max_depth=self.data.get('max-depth', suspects.MAX_DEPTH)), since

    def process(self, resources, event=None):
        options, since = self.options()
        catalogue = load_catalogue()
        names, patterns = sensitive_event_names(catalogue)
        kinds = options.kinds

        def seeds(notes):
            return suspects.seeds(self.manager, kinds, options.listed_keys, notes)

        events, coverage, chain = review.Review(
            local_session(self.manager.session_factory), self.manager.retry, options,
            catalogue.classify, names, seeds).run()
        if since < options.start:
            coverage['Notes'].insert(0, f'event history keeps {event_history.HISTORY_DAYS} '
                                        f'days: the review starts at {records.iso(options.start)}, '
                                        f'not at {records.iso(since)}')
        if patterns and options.sensitive and sources.EVENT_HISTORY in coverage['Sources']:
            coverage['Notes'].append(
                'event history looks sensitive reads up by event name: catalogue entries '
                f"{', '.join(patterns)} match name patterns and are read from trail logs only")
        minimum = self.data.get('min-severity', 'medium')
        matched = [e for e in events if (
            e['AccessKeyId'] in chain.suspects and records.at_least(e['Severity'], minimum))
            or e['AccessKeyId'] not in chain.suspects]
        unread = [n for n in coverage['Notes'] if n.startswith(sources.UNREADABLE)]
        incomplete = bool(coverage['CutShort']) or bool(unread)
        results = []
        for r in resources:
            if not matched and not incomplete:
                continue
            r[self.annotation_key] = events
            r[self.coverage_key] = coverage
            for note in unread:  # a source it could not read: never a complete review
                mark_incomplete(r, note)
            results.append(r)
        return results
