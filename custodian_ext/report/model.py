"""What the report knows about a sweep: policy runs and their findings."""
import re
from dataclasses import dataclass, field

SEVERITIES = ('critical', 'high', 'medium', 'low', 'info')

# Step titles, in the order of ../shared/RUNBOOK.md.
STEPS = {
    'R1.1': 'Credential report: when keys and passwords were last used',
    'R1.2': 'Recent use of users, groups, roles and policies',
    'R2.1': 'Is CloudTrail still recording?',
    'R2.2': 'CloudTrail event history since the incident started',
    'R3.1': 'Spend by service and region, this month against last',
    'R3.2': 'Trusted Advisor: exposed access keys',
    'R3.3': 'Resources outside the allowed regions',
    'R4.1': 'IAM principals created since the incident or not on the known list',
    'R4.2': 'Roles trusting unknown accounts; new administrators',
    'R4.3': 'Organization accounts created, invited or left',
    'X1': 'Exposed access keys (AWS quarantine marker)',
    'X2': 'Root user access keys',
    'X3': 'IAM users you did not create',
    'X4': 'Passwords to reset',
    'X5': 'Temporary credentials to revoke',
    'X6': 'Unrecognized resources in every region',
    'X7': 'Evidence before destruction',
    'X8': 'Backups and restore readiness',
    'X9': 'Account details and alternate contacts',
    'X10': 'Answer AWS Support',
}


# c7n actions that only report: a policy carrying just these still only detects.
REPORTING_ACTIONS = frozenset({'notify', 'webhook', 'post-finding', 'put-metric', 'post-item'})


def step_key(step):
    """Sort key for runbook ids: R before X, then numerically; unknown ids last."""
    m = re.match(r'^([RX])(\d+)(?:\.(\d+))?$', step or '')
    if not m:
        return (2, 0, 0, step or '')
    return (0 if m.group(1) == 'R' else 1, int(m.group(2)), int(m.group(3) or 0), '')


def severity_rank(sev):
    return SEVERITIES.index(sev) if sev in SEVERITIES else len(SEVERITIES)


@dataclass
class PolicyRun:
    """One policy in one account and region: its outcome and resources."""
    policy: str
    account: str
    account_id: str
    region: str
    status: str  # findings | clean | errored | skipped | missing
    resource_type: str = ''
    metadata: dict = field(default_factory=dict)
    description: str = ''
    resources: list = field(default_factory=list)
    error: str = ''
    # what a 'findings' run could not check (resources' c7n:incomplete): a problem too
    incomplete: list = field(default_factory=list)
    path: str = ''
    # Respond/recover runs: the action types the policy carries, whether it ran
    # with --dryrun, and what the pack's actions recorded (action-results-*.json).
    actions: list = field(default_factory=list)
    dryrun: bool = False
    action_results: list = field(default_factory=list)
    duration: float = 0.0
    tags: list = field(default_factory=list)
    # The OUT_DIR or s3:// URL the run was read from, and its layout there:
    # ``org`` (c7n-org: account/region/policy) or ``run`` (custodian run).
    source: str = ''
    layout: str = ''
    # What the check could not read (partial.json): it ran, but a clean result does
    # not cover these (CloudTrail's 90 days of history, a lookup cut short).
    partial: list = field(default_factory=list)
    # When the run started and ended (metadata.json ``execution``; 0.0 if not recorded), its
    # configuration (``config``), and files in its folder written before it started: left by
    # an earlier run into the same folder (custodian_ext.report.mixed).
    started: float = 0.0
    ended: float = 0.0
    config: dict = field(default_factory=dict)
    stale: list = field(default_factory=list)

    @property
    def kind(self):
        """``respond`` for policies that change resources, else ``detect``.

        The pack tags its policies ``detect``, ``respond`` or ``recover``; other
        policies count as respond when they carry an action that is not only a
        notification (a detect policy may notify).
        """
        tags = set(self.tags)
        if 'detect' in tags and not self.action_results:
            return 'detect'
        if tags & {'respond', 'recover'} or self.action_results or self.changing_actions:
            return 'respond'
        return 'detect'

    @property
    def changing_actions(self):
        return [a for a in self.actions if a not in REPORTING_ACTIONS]

    @property
    def step(self):
        return str(self.metadata.get('runbook', ''))

    @property
    def severity(self):
        return self.metadata.get('severity', 'info')


@dataclass
class Finding:
    run: PolicyRun
    resource_id: str
    resource: dict

    @property
    def step(self):
        return self.run.step

    @property
    def severity(self):
        return self.run.severity
