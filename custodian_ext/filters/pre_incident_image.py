"""The AMI to go back to (X8): launch templates and Auto Scaling groups changed since the incident.

Restoring EC2 from an AMI means launching from the image a group or template
used before the incident. Launch templates keep every version with its
creation time, so that image is the one in the newest version created before
``incident_start``. This is a read-only filter: changing a group or a
template's default version is left to a person.
"""
from botocore.exceptions import ClientError
from c7n.exceptions import PolicyValidationError
from c7n.filters import Filter
from c7n.query import RetryPageIterator
from c7n.utils import chunks, local_session, type_schema

from custodian_ext.actions.recovery import as_utc, iso
from custodian_ext.registry import register_filter
from custodian_ext.settings import (
    SettingsError, check, is_placeholder, or_placeholder, parse_timestamp)

ANNOTATION = 'c7n:pre-incident-image'
TEMPLATE_GONE = ('InvalidLaunchTemplateId.NotFound', 'InvalidLaunchTemplateName.NotFoundException',
                 'InvalidLaunchTemplateId.Malformed')


def _paginate(client, operation, **kw):
    paginator = client.get_paginator(operation)
    paginator.PAGE_ITERATOR_CLS = RetryPageIterator
    return paginator.paginate(**kw)


def template_spec(asg):
    """(launch template id or name, version) an Auto Scaling group launches from, or None."""
    spec = asg.get('LaunchTemplate') or (
        (asg.get('MixedInstancesPolicy') or {}).get('LaunchTemplate') or {}
    ).get('LaunchTemplateSpecification')
    if not spec:
        return None
    return spec.get('LaunchTemplateId') or spec.get('LaunchTemplateName'), spec.get('Version')


@register_filter('pre-incident-image', ['asg', 'launch-template-version'])
class PreIncidentImage(Filter):
    """Groups and templates that launch from a version or image newer than the incident.

    For a launch template version (or the version an Auto Scaling group
    launches from, ``$Default`` and ``$Latest`` resolved), matches when that
    version or its image was created at or after ``incident-start``, and
    annotates ``c7n:pre-incident-image`` with the current version and image
    and the newest version created before ``incident-start`` with its image:
    the one to go back to. A group on a launch configuration matches when the
    configuration or its image is that new; configurations keep no history,
    so the annotation says where to look instead. A group whose launch
    template no longer exists matches too.

    :example:

    .. code-block:: yaml

        policies:
          - name: x8-asg-pre-incident-image
            resource: aws.asg
            filters:
              - type: pre-incident-image
                incident-start: '{incident_start}'
    """

    schema = type_schema('pre-incident-image', required=['incident-start'],
                         **{'incident-start': or_placeholder({'type': 'string'})})
    permissions = ('ec2:DescribeLaunchTemplateVersions', 'ec2:DescribeImages',
                   'autoscaling:DescribeLaunchConfigurations')

    def validate(self):
        value = self.data.get('incident-start')
        if not is_placeholder(value):
            try:
                check('incident_start', value, key='incident-start')
            except SettingsError as e:
                raise PolicyValidationError(
                    f"{self.type}: {e} (policy {self.manager.data.get('name')})") from None
        return self

    def process(self, resources, event=None):
        self.start = parse_timestamp(
            check('incident_start', self.data['incident-start'], key='incident-start'))
        session = local_session(self.manager.session_factory)
        self.ec2 = session.client('ec2')
        self.versions, self.configs, self.images = {}, {}, {}
        names = sorted({r['LaunchConfigurationName'] for r in resources
                        if r.get('LaunchConfigurationName') and not template_spec(r)})
        if names:
            asg = session.client('autoscaling')
            for batch in chunks(names, 50):
                for page in _paginate(asg, 'describe_launch_configurations',
                                      LaunchConfigurationNames=batch):
                    for c in page.get('LaunchConfigurations') or ():
                        self.configs[c['LaunchConfigurationName']] = c
        plans = [(r, self.plan(r)) for r in resources]
        self.describe_images(plans)
        matched = []
        for r, plan in plans:
            annotation = self.annotate(plan)
            if annotation is not None:
                r[ANNOTATION] = annotation
                matched.append(r)
        return matched

    # -- lookups -------------------------------------------------------------------

    def template_versions(self, template):
        """All versions of a template, oldest first; None if the template is gone."""
        if template not in self.versions:
            key = 'LaunchTemplateId' if template.startswith('lt-') else 'LaunchTemplateName'
            try:
                self.versions[template] = sorted(
                    (v for page in _paginate(self.ec2, 'describe_launch_template_versions',
                                             **{key: template})
                     for v in page.get('LaunchTemplateVersions') or ()),
                    key=lambda v: v['VersionNumber'])
            except ClientError as e:
                if e.response['Error']['Code'] not in TEMPLATE_GONE:
                    raise
                self.versions[template] = None
        return self.versions[template]

    def describe_images(self, plans):
        """Every image involved, 200 per call; a deregistered image is absent from the answer."""
        ids = sorted({i for _, p in plans for i in (p.get('current_image'), p.get('pre_image'))
                      if i and i.startswith('ami-')})
        for batch in chunks(ids, 200):
            for page in _paginate(self.ec2, 'describe_images',
                                  Filters=[{'Name': 'image-id', 'Values': batch}]):
                for img in page.get('Images') or ():
                    self.images[img['ImageId']] = img

    def image(self, image_id):
        out = {'image_id': image_id}
        img = self.images.get(image_id)
        if img:
            out.update(image_name=img.get('Name'), image_created=img.get('CreationDate'))
        elif image_id and image_id.startswith('ami-'):
            out['image_missing'] = True
        return out

    def after_start(self, when):
        return when is not None and as_utc(when) >= self.start

    # -- per resource ----------------------------------------------------------------

    def plan(self, r):
        """The versions and configuration involved, before images are known."""
        if 'AutoScalingGroupName' in r:
            spec = template_spec(r)
            if spec is None:
                name = r.get('LaunchConfigurationName')
                config = self.configs.get(name) if name else None
                if config is None:
                    return {'kind': 'none', 'note': 'the group names no launch template or '
                            'launch configuration that exists'}
                return {'kind': 'config', 'config': config, 'current_image': config.get('ImageId')}
            template, version = spec
        else:
            template, version = r['LaunchTemplateId'], str(r['VersionNumber'])
        versions = self.template_versions(template)
        if versions is None:
            return {'kind': 'gone', 'template': template,
                    'note': f'launch template {template} no longer exists'}
        if version in (None, '$Default'):
            current = next((v for v in versions if v.get('DefaultVersion')), None)
        elif version == '$Latest':
            current = versions[-1] if versions else None
        else:
            current = next((v for v in versions if str(v['VersionNumber']) == str(version)), None)
        if current is None:
            return {'kind': 'gone', 'template': template,
                    'note': f'launch template {template} has no version {version}'}
        before = [v for v in versions if as_utc(v['CreateTime']) < self.start]
        pre = before[-1] if before else None
        return {'kind': 'template', 'template': template, 'current': current, 'pre': pre,
                'current_image': (current.get('LaunchTemplateData') or {}).get('ImageId'),
                'pre_image': (pre.get('LaunchTemplateData') or {}).get('ImageId') if pre else None}

    def annotate(self, plan):
        """The annotation for a resource that launches something newer than the incident, else
        None."""
        kind = plan['kind']
        if kind in ('none', 'gone'):
            return {'note': plan['note']}
        current = self.image(plan['current_image'])
        if kind == 'config':
            config = plan['config']
            if not (self.after_start(config['CreatedTime'])
                    or self.after_start(current.get('image_created'))):
                return None
            return {'launch_configuration': config['LaunchConfigurationName'],
                    'launch_configuration_created': iso(as_utc(config['CreatedTime'])),
                    'current': current,
                    'note': 'launch configurations keep no history: find the group\'s previous '
                            'configuration in CloudTrail (UpdateAutoScalingGroup, '
                            'CreateLaunchConfiguration)'}
        cur = plan['current']
        if not (self.after_start(cur['CreateTime'])
                or self.after_start(current.get('image_created'))):
            return None
        out = {'launch_template': cur.get('LaunchTemplateId'),
               'launch_template_name': cur.get('LaunchTemplateName'),
               'current_version': cur['VersionNumber'],
               'current_version_created': iso(as_utc(cur['CreateTime'])),
               'current': current}
        pre = plan['pre']
        if pre is None:
            out['note'] = 'the template has no version from before incident_start'
            return out
        out.update(pre_incident_version=pre['VersionNumber'],
                   pre_incident_version_created=iso(as_utc(pre['CreateTime'])),
                   pre_incident=self.image(plan['pre_image']))
        if out['pre_incident'].get('image_missing'):
            out['note'] = f"image {plan['pre_image']} no longer exists (deregistered)"
        return out
