"""Wrappers of c7n's ``Policy`` and schema checks, for every program (Lambda included).

Each calls the original and only adds checks for the pack's policies; for any
other policy it is the original.
"""
import copy


def checked_variables(original):
    """``Policy.get_variables``: every pack setting a policy refers to is checked and defaulted."""
    import custodian_ext.settings as settings

    def get_variables(self, variables=None):
        names = settings.referenced(self.data)
        if names:
            source = getattr(self.options, 'vars_file', None) or 'vars'
            try:
                checked = settings.validate(variables or {}, source=source, names=names,
                                            unknown=False)
            except settings.SettingsError as e:
                raise settings.SettingsError(f"policy {self.name}: {e}") from None
            if variables is None:
                variables = checked
            else:
                variables.update(checked)
        return original(self, variables)
    return get_variables


def validate_with_samples(original):
    """``Policy.validate``: before settings are substituted, validate a copy with samples.

    c7n validates each policy when it loads the file, before ``{name}``
    settings are substituted, and its date filters reject a literal
    ``'{incident_start}'``. c7n validates the policy itself again once the real
    values are in.
    """
    from c7n.policy import Policy
    import custodian_ext.settings as settings

    def validate(self):
        if settings.referenced(self.data):
            # A deep copy: c7n's get_variables rewrites mode.role in place.
            sample = Policy(copy.deepcopy(self.data), self.options, self.session_factory)
            sample.expand_variables(sample.get_variables(settings.samples()))
            result = original(sample)
            # c7n's deprecation report reads the original's parsed conditions.
            try:
                self.conditions.validate()
            except Exception:
                pass  # the substituted copy above is the one that counts
            return result
        return original(self)
    return validate


def schema_with_samples(original):
    """``c7n.schema.validate``: a setting that holds a list or mapping passes the schema.

    c7n checks the file's schema before settings are substituted, so
    ``transport: '{notify_transport}'`` would fail it; a copy with example
    settings is checked instead. With the performance layer on, each policy is checked
    against its own resource type's definitions (``custodian_ext.schema_check``); what
    that does not accept goes to c7n's check, which reports as before.
    """
    import custodian_ext.settings as settings
    from custodian_ext.patches import performance_enabled

    def validate(data, schema=None, resource_types=()):
        if settings.referenced(data):
            data = settings.substitute(data, settings.samples())
        if schema is None and performance_enabled():
            # c7n checks the schema it generates against JSON Schema's meta-schema before
            # every file (40 ms each, a third of a 17-region run's start-up): the same
            # answer each time, for a schema c7n's own tests check
            from c7n.schema import check_unique, generate
            from custodian_ext.schema_check import valid
            schema = generate(resource_types)
            if valid(data, schema):  # each policy against its own type's definitions
                return check_unique(data) or []
        return original(data, schema, resource_types)
    return validate


def recorded_skips(original):
    """``Policy.is_runnable``: a pack policy its conditions skip leaves ``skipped.json``."""
    from custodian_ext.policyfiles import is_pack_policy
    from custodian_ext.skips import record_skip

    def is_runnable(self, event=None):
        runnable = original(self, event)
        if not runnable and is_pack_policy(self.data) and \
                not getattr(self, '_ext_skip_recorded', False):
            self._ext_skip_recorded = True
            record_skip(self)
        return runnable
    return is_runnable


def checked_provision(original):
    """``LambdaMode.provision``: a pack function deploys only with a valid schedule and role."""
    def provision(self):
        import custodian_ext.periodic as periodic
        if periodic.is_pack_function(self.policy.data):
            from c7n.utils import get_partition, local_session
            periodic.check_deploy(self.policy.data, local_session(self.policy.session_factory),
                                  self.policy.options.account_id,
                                  get_partition(self.policy.options.region))
        return original(self)
    return provision


def brace_free_strings_kept(original):
    """``c7n.utils.format_string_values``, as c7n has it, without formatting strings that
    hold no brace (performance layer).

    c7n-org expands every policy's variables in every account-region; c7n's recursion
    repacks its keyword arguments (the variables) at every node of the policy and runs
    the formatter on every string. A string without ``{`` or ``}`` formats to itself
    (a lone ``}`` still goes to the formatter, which raises as before), so those are
    kept as they are (measured: 5% of a c7n-org worker's CPU went to the recursion).
    Containers are copied as c7n copies them (new dicts and lists, same leaves).
    """
    def format_string_values(obj, err_fallback=(IndexError, KeyError), formatter=None,
                             *args, **kwargs):
        def walk(o):
            if isinstance(o, dict):
                return {k: walk(v) for k, v in o.items()}
            if isinstance(o, list):
                return [walk(v) for v in o]
            if isinstance(o, str) and ('{' in o or '}' in o):
                try:
                    return formatter(o, *args, **kwargs) if formatter else \
                        o.format(*args, **kwargs)
                except err_fallback:
                    return o
            return o
        return walk(obj)
    return format_string_values
