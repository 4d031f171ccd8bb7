"""R2.1: restart CloudTrail logging that an attacker stopped, and say which trails stay broken."""
from c7n.resources.aws import Arn
from c7n.utils import type_schema

from custodian_ext.actions.core import DONE, FAILED, PackAction, result
from custodian_ext.registry import register_action


@register_action('restart-logging', ['cloudtrail'])
class RestartLogging(PackAction):
    """Start logging on a trail, then check that it logs (R2.1).

    Unlike c7n's ``set-logging``, which silently passes over the copies of a
    multi-region trail seen outside its home region, this calls StartLogging
    in the trail's home region, reads the status back, and reports every
    trail it could not fix as failed: an organization trail owned by another
    account (start it from the management account), an API error, or a trail
    that still is not logging. A restarted trail whose last delivery failed
    (for example its bucket is gone) is reported with that error.

    A deleted trail cannot be restarted; c7n's ``enable-cloudtrail`` on
    ``aws.account`` creates a new one.

    :example:

    .. code-block:: yaml

        policies:
          - name: r2-1-restart-stopped-trails
            resource: aws.cloudtrail
            filters:
              - type: status
                key: IsLogging
                value: false
            actions:
              - restart-logging
    """

    schema = type_schema('restart-logging')
    permissions = ('cloudtrail:StartLogging', 'cloudtrail:GetTrailStatus')

    def process(self, resources):
        self.clients = {}
        return super().process(resources)

    def trail_client(self, region):
        if region not in self.clients:
            self.clients[region] = self.client('cloudtrail', region=region)
        return self.clients[region]

    def still_needed(self, r):
        parsed = Arn.parse(r['TrailARN'])
        if parsed.account_id != self.manager.config.account_id:
            return None  # reported as failed: another account's trail
        client = self.trail_client(r.get('HomeRegion') or parsed.region)
        if self.call(client.get_trail_status, Name=r['TrailARN']).get('IsLogging'):
            return 'already logging (restarted by another run, or by hand)'
        return None

    def process_resource(self, r):
        arn = r['TrailARN']
        parsed = Arn.parse(arn)
        if parsed.account_id != self.manager.config.account_id:
            return result(arn, FAILED, f'organization trail owned by account {parsed.account_id}: '
                                       f'only that account can restart it')
        before = r.get('c7n:TrailStatus') or {}
        client = self.trail_client(r.get('HomeRegion') or parsed.region)
        self.call(client.start_logging, Name=arn)
        status = self.call(client.get_trail_status, Name=arn)
        details = {'home_region': r.get('HomeRegion') or parsed.region,
                   'stopped_at': before.get('StopLoggingTime') or before.get('TimeLoggingStopped')}
        if not status.get('IsLogging'):
            return result(arn, FAILED, 'StartLogging succeeded but the trail is still not logging',
                          **details)
        errors = {k: status[k] for k in ('LatestDeliveryError', 'LatestNotificationError',
                                         'LatestDigestDeliveryError') if status.get(k)}
        if errors:
            details['delivery_errors'] = errors
            return result(arn, DONE, 'logging restarted, but the last delivery failed: ' +
                          '; '.join(f'{k} {v}' for k, v in errors.items()), **details)
        return result(arn, DONE, 'logging restarted', **details)
