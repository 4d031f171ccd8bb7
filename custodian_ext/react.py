"""Real-time containment: Lambda policies that act the moment AWS reports a leaked key (X1).

``policies/react/`` holds one policy per notice (``custodian_ext.notices``):
the AWS Health event ``AWS_RISK_CREDENTIALS_EXPOSED`` and Trusted Advisor's
"Exposed Access Keys" check refresh. ``custodian run`` (or ``c7n-org run``)
deploys each as a Lambda function with an EventBridge rule for its notice;
the function deactivates exactly the named key, tags the user with the
notice, revokes the sessions of the roles the user may assume, notifies,
and writes what it did to its output (``notice-<event id>.json``).

Why a mode of the pack's own, ``exposed-key-notice``, registered in c7n's
execution-mode registry, rather than a stock one:

- c7n's ``phd`` mode refuses ``aws.iam-user`` (it wants a ``health-event``
  filter on the resource type), and resolves resources by calling the AWS
  Health API (``DescribeAffectedEntities``: a Business support plan, and the
  organization variants from a management account) and taking each
  affected entity as a resource id. For ``AWS_RISK_CREDENTIALS_EXPOSED`` the
  entity is the access key id, so it would look up a user named ``AKIA...``.
- c7n's ``cloudtrail`` mode always renders the detail-type ``AWS API Call
  via CloudTrail`` (a ``pattern`` is merged under it), and resolves resource
  ids with a JMESPath expression on the event: it can express neither notice
  nor the step from key id to user.
- c7n's ``member-role`` assumes a role in the event's ``account``; a Health
  event received through the organizational view carries the management
  account there and the affected account in ``detail.affectedAccount``.

The mode renders the notice's event pattern, reads the event itself (no
Health API, so no support plan is needed), finds the user of each named key
(Trusted Advisor names it; for Health, ``iam:GetAccessKeyLastUsed`` returns
the key's user), enters the affected account with ``affected-account-role``
when the notice is for another account of the organization, and then runs
the policy's filters and actions on that user as c7n's Lambda modes do. The
``exposed-key`` filter then checks the key against the user's own keys.

Three differences from c7n's event modes, each on purpose:

- every invocation writes ``notice-<event id>.json`` to the policy's output and logs
  it, including a malformed notice, a key that is not in the account, or a
  key that is already inactive (nothing is changed then);
- ``notify`` actions run even when an earlier action failed, so that a
  failed containment is reported; the invocation then fails (Lambda retries
  it, and the failure shows in its error metrics);
- deploying checks that the function can work: the pack's handler and
  packages, the ``exposed-key`` filter, a notify transport, and a region
  where AWS delivers the notice.
"""
import copy
import json
import logging
import re

from botocore.exceptions import ClientError
from c7n import mu, utils
from c7n.actions import EventAction
from c7n.actions.notify import BaseNotify
from c7n.exceptions import PolicyValidationError
from c7n.policy import LambdaMode, execution

import custodian_ext.notices as notices
import custodian_ext.settings as settings
from custodian_ext.filters.exposed_key import MATCHED, MODE, ExposedKey
from custodian_ext.errors import PackError
from custodian_ext.periodic import HANDLER, PACKAGES, PACK_TAG, pack_tags

log = logging.getLogger('custodian.ext.react')

# What happened to the notice as a whole.
CONTAINED, UNCHANGED, REJECTED, FAILED = 'contained', 'nothing-changed', 'rejected', 'failed'
# Per key, besides the filter's outcomes.
UNKNOWN_KEY, UNKNOWN_USER, ROOT_KEY = 'unknown-key', 'unknown-user', 'root-key'
DEACTIVATED, KEPT, NOT_DEACTIVATED = 'deactivated', 'kept', 'not-deactivated'
# One record per invocation: c7n's S3 layout keeps one folder per policy and
# hour, where a later notice's resources.json would replace an earlier one's.
NOTICE_FILE = 'notice-{}.json'
# The function's own account, kept in its (warm, reused) execution options.
HOME_ACCOUNT = 'custodian_ext_home_account'


def event_summary(event):
    if not isinstance(event, dict):
        return {}
    return {k: event[k] for k in ('id', 'time', 'source', 'detail-type', 'account', 'region')
            if isinstance(event.get(k), str)}


def notice_file(record):
    event_id = record['event'].get('id') or 'unknown'
    return NOTICE_FILE.format(re.sub(r'[^\w.-]', '_', event_id)[:100])


class NoticeRejected(Exception):
    """The notice cannot be acted on here; the message says why."""


class NoticeEventSource(mu.CloudWatchEventSource):
    """The EventBridge rule of one kind of notice (c7n's rule source, with its pattern)."""

    def render_event_pattern(self):
        payload = copy.deepcopy(notices.PATTERNS[self.data['notice']])
        if self.data.get('pattern'):
            payload = utils.merge_dict(payload, self.data['pattern'])
        return json.dumps(payload)


class NoticePolicyLambda(mu.PolicyLambda):

    def get_events(self, session_factory):
        return [NoticeEventSource(self.policy.data['mode'], session_factory)]


@execution.register(MODE)
class ExposedKeyNoticeMode(LambdaMode):
    """Run the policy on the IAM user whose access key an AWS notice names (X1).

    ``notice: health`` subscribes to the AWS Health event
    ``AWS_RISK_CREDENTIALS_EXPOSED``; ``notice: trusted-advisor`` to Trusted
    Advisor's "Exposed Access Keys" check refresh (status ``ERROR``).
    ``affected-account-role`` is the role (name) to assume in the account a
    notice is for, when that is not the function's own account (Health's
    organizational view, deployed in the management account or the
    delegated administrator); without it such notices are rejected.

    :example:

    .. code-block:: yaml

        policies:
          - name: x1-react-health-exposed-key
            resource: aws.iam-user
            mode:
              type: exposed-key-notice
              notice: health
              role: '{react_role}'
              affected-account-role: '{react_member_role}'
              handler: custodian_ext.handler.run
              packages: [custodian_ext, yaml]
            filters:
              - exposed-key
            actions:
              - type: deactivate-access-keys
                grace-days: '{key_grace_days}'
              - type: notify
                to: '{notify_to}'
                transport: '{notify_transport}'
    """

    schema = utils.type_schema(
        MODE, required=['notice'], notice={'enum': list(notices.KINDS)},
        rinherit=LambdaMode.schema, **{'affected-account-role': {'type': 'string'}})

    def get_permissions(self):
        perms = ['iam:GetAccessKeyLastUsed']
        if self.policy.data['mode'].get('affected-account-role'):
            perms.append('sts:AssumeRole')
        return perms

    @property
    def kind(self):
        return self.policy.data['mode']['notice']

    # -- checks --------------------------------------------------------------

    def validate(self):
        super().validate()
        name, mode = self.policy.name, self.policy.data['mode']
        if self.policy.resource_manager.type != 'iam-user':
            raise PolicyValidationError(f"policy {name}: mode {MODE} acts on aws.iam-user only")
        if mode.get('member-role'):
            raise PolicyValidationError(
                f"policy {name}: c7n's member-role assumes into the event's account, which "
                f"for an organization's Health events is the management account; use "
                f"affected-account-role ('{{react_member_role}}')")
        if mode.get('handler') != HANDLER or not set(PACKAGES) <= set(mode.get('packages') or ()):
            raise PolicyValidationError(
                f"policy {name}: mode {MODE} needs handler: {HANDLER} and packages: "
                f"[{', '.join(PACKAGES)}], or the function cannot load the pack's filters "
                f"and actions")
        if not any(isinstance(f, ExposedKey) for f in self.policy.resource_manager.iter_filters()):
            raise PolicyValidationError(
                f"policy {name}: mode {MODE} needs the exposed-key filter, which limits the "
                f"policy to the key the notice names")
        for action in self.policy.resource_manager.actions:
            if not isinstance(action, BaseNotify):
                continue
            transport = action.data.get('transport')
            if settings.is_placeholder(transport):
                continue  # checked once substituted
            if not transport:
                raise settings.SettingsError(
                    f"policy {name}: notify_transport is not set; the react functions notify "
                    f"through it. Add to policies/vars.yml: notify_transport: "
                    f"{settings.TRANSPORT_EXAMPLE.split(' or ')[0]}")
        return self

    def check_region(self):
        region = self.policy.options.region
        delivered = notices.DELIVERY_REGIONS[self.kind]
        if utils.get_partition(region) == 'aws' and region not in delivered:
            raise PackError(
                f"policy {self.policy.name}: AWS sends {self.kind} notices about IAM keys to "
                f"{' and '.join(delivered)}, so a function in {region} would never run; "
                f"deploy it in {delivered[0]} (global_region: {delivered[0]})")

    # -- deploying -----------------------------------------------------------

    @property
    def policy_lambda(self):
        return NoticePolicyLambda

    def add_pack_tags(self):
        """The pack's tags on the function: its version and the runbook step."""
        tags = self.policy.data['mode'].setdefault('tags', {})
        tags.update(pack_tags())
        step = (self.policy.data.get('metadata') or {}).get('runbook')
        if step:
            tags[f'{PACK_TAG}-runbook'] = str(step)

    def provision(self):
        self.check_region()
        self.add_pack_tags()
        return super().provision()

    # -- running -------------------------------------------------------------

    def run(self, event, lambda_context):
        self.setup_exec_environment(event)
        self.enter_home()
        if not self.policy.is_runnable(event):
            return []
        with self.policy.ctx as ctx:
            record = {'policy': self.policy.name, 'event': event_summary(event),
                      'notice': None, 'keys': []}
            resources = []
            try:
                notice = notices.parse(event, self.kind)
                record['notice'] = notice.as_dict()
                self.enter_account(notice)
                users, record['keys'] = self.resolve(notice)
                resources = self.policy.resource_manager.filter_resources(users, event)
                self.attribute(record['keys'], users)
                ctx.metrics.put_metric('ResourceCount', len(resources), 'Count',
                                       Scope='Policy', buffer=False)
                ctx.output.write_file('resources.json', utils.dumps(resources, indent=2))
                if resources:
                    self.run_actions(ctx, resources, event)
            except (notices.MalformedNotice, NoticeRejected) as e:
                return self.finish(ctx, record, REJECTED, str(e), [])
            except Exception as e:
                self.attribute_results(record['keys'], resources)
                self.finish(ctx, record, FAILED, f'{type(e).__name__}: {e}', resources)
                raise
            self.attribute_results(record['keys'], resources)
            done = [k['key'] for k in record['keys'] if k.get('outcome') == DEACTIVATED]
            if done:
                return self.finish(ctx, record, CONTAINED, 'deactivated ' + ', '.join(done),
                                   resources)
            return self.finish(ctx, record, UNCHANGED, 'no key was deactivated', resources)

    def enter_home(self):
        """Start every invocation in the function's own account.

        A warm Lambda container reuses c7n's execution options and its session
        cache (which c7n keys by region only): after a notice for a member
        account, both would still point there.
        """
        options = self.policy.options
        home = options.get(HOME_ACCOUNT) or options.account_id
        options[HOME_ACCOUNT] = home
        if options.account_id != home:
            options['account_id'] = home
            utils.reset_session_cache()

    def enter_account(self, notice):
        """Act in the account the keys belong to (Health's organizational view)."""
        own = self.policy.options.account_id
        target = notice.affected_account
        if target == own:
            return
        role = self.policy.data['mode'].get('affected-account-role')
        if not role:
            raise NoticeRejected(
                f"the notice is for account {target}; this function acts only in its own "
                f"account {own} (set react_member_role to act in the organization's accounts)")
        partition = utils.get_partition(self.policy.options.region)
        arn = f"arn:{partition}:iam::{target}:role/{role}"
        utils.reset_session_cache()
        self.policy.options['account_id'] = target
        self.policy.session_factory.assume_role = arn
        log.info("notice for account %s: assuming %s", target, arn)

    def resolve(self, notice):
        """The users of the named keys, and one record per key."""
        keys, names = [], []
        iam = None
        for k in notice.keys:
            entry = {'key': k.key_id, 'user': k.user_name}
            keys.append(entry)
            user = k.user_name
            if user is None:
                iam = iam or utils.local_session(self.policy.session_factory).client('iam')
                try:
                    user = self.policy.resource_manager.retry(
                        iam.get_access_key_last_used, AccessKeyId=k.key_id)['UserName']
                except ClientError as e:
                    if e.response['Error']['Code'] != 'NoSuchEntity':
                        raise
                    entry.update(outcome=UNKNOWN_KEY, reason=(
                        f"no access key {k.key_id} in account {notice.affected_account}"))
                    continue
                entry['user'] = user
            if notices.is_root(user):
                entry.update(outcome=ROOT_KEY, reason=(
                    "a root user access key: only the root user can deactivate it (X2); "
                    "sign in as root and delete it now"))
                continue
            if user not in names:
                names.append(user)
        users = self.policy.resource_manager.get_resources(names) if names else []
        found = {u['UserName'] for u in users}
        for entry in keys:
            if 'outcome' not in entry and entry['user'] not in found:
                entry.update(outcome=UNKNOWN_USER, reason=(
                    f"no IAM user {entry['user']} in account {notice.affected_account}"))
        return users, keys

    @staticmethod
    def attribute(keys, users):
        """Each key's outcome from the ``exposed-key`` filter's annotations."""
        seen = {}
        for u in users:
            for o in u.get(ExposedKey.annotation_key) or ():
                seen[(u['UserName'], o['AccessKeyId'])] = o
        for entry in keys:
            if 'outcome' in entry:
                continue
            o = seen.get((entry['user'], entry['key']))
            if o is None:
                entry.update(outcome=UNKNOWN_KEY, reason=(
                    f"{entry['user']} has no access key {entry['key']}"))
            else:
                entry['outcome'] = o['outcome']
                if o.get('reason'):
                    entry['reason'] = o['reason']

    @staticmethod
    def attribute_results(keys, resources):
        """Matched keys: deactivated, kept (keep_access_keys) or not, from the action's result."""
        by_user = {}
        for r in resources:
            for res in r.get('c7n:action-results') or ():
                if res.get('action') == 'deactivate-access-keys':
                    by_user[r['UserName']] = res
        for entry in keys:
            if entry.get('outcome') != MATCHED:
                continue
            res = by_user.get(entry['user']) or {}
            if entry['key'] in (res.get('deactivated') or ()):
                entry['outcome'] = DEACTIVATED
            elif entry['key'] in (res.get('kept') or ()):
                entry.update(outcome=KEPT, reason='listed in keep_access_keys: left active')
            else:
                entry.update(outcome=NOT_DEACTIVATED,
                             reason=res.get('reason') or 'the deactivate action did not run')

    def run_actions(self, ctx, resources, event):
        """c7n's action loop, except that notify actions still run after a failure."""
        failure = None
        for action in self.policy.resource_manager.actions:
            if failure is not None and not isinstance(action, BaseNotify):
                log.warning("policy:%s action:%s skipped: an earlier action failed",
                            self.policy.name, action.name)
                continue
            try:
                if isinstance(action, EventAction):
                    results = action.process(resources, event)
                else:
                    results = action.process(resources)
                ctx.output.write_file('action-%s' % action.name, utils.dumps(results))
            except Exception as e:
                log.exception("policy:%s action:%s failed", self.policy.name, action.name)
                failure = failure or e
        if failure is not None:
            raise failure

    def finish(self, ctx, record, outcome, reason, resources):
        record.update(outcome=outcome, reason=reason, account=self.policy.options.account_id,
                      actions=[{'user': r['UserName'], 'results': r.get('c7n:action-results', [])}
                               for r in resources])
        ctx.output.write_file(notice_file(record), utils.dumps(record, indent=2))
        level = logging.INFO if outcome in (CONTAINED, UNCHANGED) else logging.WARNING
        log.log(level, "policy:%s notice %s: %s", self.policy.name, outcome,
                json.dumps(record, default=str))
        return resources


# Calls c7n makes that its elements do not declare: c7n's notify names the
# account by its alias (iam:ListAccountAliases).
NOTIFY_PERMISSIONS = ('iam:ListAccountAliases',)


def execution_role_policy(policies, values):
    """The IAM policy of the react functions' execution role, for ``values`` (settings).

    ``custodian_ext.periodic.execution_role_policy`` (the policies' own
    permissions, the function's logs, ``s3:PutObject`` on ``react_output``),
    for the policies with their settings substituted, plus what c7n's notify
    calls without declaring it.
    """
    import custodian_ext.periodic as periodic
    data = [settings.substitute(p, values) for p in policies]
    doc = periodic.execution_role_policy(data)
    if any(a.get('type') == 'notify' for p in data for a in p.get('actions') or ()
           if isinstance(a, dict)):
        [main] = [s for s in doc['Statement'] if s['Sid'] == 'PackPolicies']
        main['Action'] = sorted(set(main['Action']) | set(NOTIFY_PERMISSIONS))
    return doc


def check_regions(data, regions, account_id):
    """Refuse, before anything deploys, a react function in a region AWS sends no notice to.

    ``data`` has its settings substituted; ``regions`` are the run's explicit
    regions. Only regions where the policy's conditions let it run count.
    """
    if ((data or {}).get('mode') or {}).get('type') != MODE:
        return
    import custodian_ext  # noqa: F401
    from c7n.config import Config
    from c7n.policy import Policy
    from c7n.resources import load_resources
    load_resources((data['resource'],))
    for region in regions:
        policy = Policy(copy.deepcopy(data), Config.empty(region=region, account_id=account_id))
        policy.conditions.validate()  # parses the conditions
        if policy.conditions.evaluate():
            policy.get_execution_mode().check_region()
