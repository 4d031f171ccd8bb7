"""The one table of every patch the pack makes (see ``custodian_ext.patches``).

Programs: ``custodian`` and ``c7n-org`` (the console scripts), ``lambda`` (the
periodic and react functions), ``custodian-ext`` (the pack's own command).
``always=False``: part of the performance layer, off with ``CUSTODIAN_EXT_PERF=0``.
``signature``: the target's signature in the locked versions (tests pin it).
"""
import custodian_ext.concurrency as concurrency
import custodian_ext.lambda_runs as lambda_runs
import custodian_ext.org_order as org_order
import custodian_ext.perf as perf
import custodian_ext.runcache as runcache
from custodian_ext.patches import ALL, CLI, Patch
from custodian_ext.patches import c7n_org, custodian_cli, policy

TABLE = (
    # -- settings, validation and skip records: every program ----------------------
    Patch('c7n.policy:Policy.get_variables', policy.checked_variables, ALL,
          "check and default every pack setting a policy refers to before c7n substitutes it "
          "(c7n checks none: a string where a region list goes turns not-in into a substring test)",
          signature='(self, variables=None)'),
    Patch('c7n.policy:Policy.validate', policy.validate_with_samples, ALL,
          "c7n validates before substituting settings; its date filters reject a literal "
          "'{incident_start}', so a copy with sample settings is validated",
          signature='(self)'),
    Patch('c7n.schema:validate', policy.schema_with_samples, ALL,
          "the schema check also runs before substitution; a setting holding a list or "
          "mapping would fail it", signature='(data, schema=None, resource_types=())',
          requires=('jsonschema',)),
    Patch('c7n.policy:Policy.is_runnable', policy.recorded_skips, ALL,
          "a pack policy its conditions skip leaves skipped.json, so a skip never reads as "
          "'clean' or 'missing'", signature='(self, event=None)'),
    Patch('c7n.policy:LambdaMode.provision', policy.checked_provision, ALL,
          "the pack's periodic functions deploy only with a valid schedule and an existing "
          "execution role, whatever deploys them", signature='(self)'),

    Patch('c7n.policy:Policy.push', lambda_runs.recorded_push, ('lambda',),
          "c7n's Lambda handler returns nothing per policy: each run's resources are "
          "recorded so the function can export them to Security Hub after the run",
          signature='(self, event, lambda_ctx=None)'),

    # -- the custodian console script ----------------------------------------------
    Patch('c7n.commands:_load_vars', custodian_cli.checked_vars_file, ('custodian',),
          "types and misspelt keys of --vars-file checked before any API call",
          signature='(options)'),
    Patch('c7n.commands:run', custodian_cli.checked_run, ('custodian',),
          "for pack policies: settings, credentials, global_region placement and Lambda "
          "deploy checks before the first policy; folders read as their files",
          # c7n's policy_command decorator: the signature shown is the wrapped function's
          signature='(options, policies: List[c7n.policy.Policy]) -> None'),
    Patch('c7n.cli:main', custodian_cli.one_line_errors, ('custodian',),
          "the pack's errors as one 'custodian: error:' line; validate takes folders",
          signature='(args=None)'),

    # -- the c7n-org console script ------------------------------------------------
    Patch('c7n_org.cli:init', c7n_org.checked_init, ('c7n-org',),
          "for pack policies: accounts file, -u file, -p/-l selection, every account's vars "
          "and the caller's credentials before any worker starts; then warm the models",
          signature='(config, use, debug, verbose, accounts, tags, policies, resource=None, '
                    'policy_tags=(), not_accounts=None)'),
    Patch('c7n_org.cli:validate.callback', c7n_org.checked_validate, ('c7n-org',),
          "c7n-org validate does not call init: the same checks there",
          signature='(config, use, policy, policy_tags, resource, accounts, tags, '
                    'not_accounts, per_account, check_deprecations, debug, verbose)'),

    # -- retries: custodian and c7n-org ----------------------------------------------
    Patch('botocore.configprovider:BOTOCORE_DEFAUT_SESSION_VARIABLES[retry_mode]',
          perf.default_retry_mode, CLI,
          "sweeps meet API throttling: botocore's standard retry mode (backoff with jitter) "
          "unless the user's AWS config says otherwise"),
    Patch('botocore.configprovider:BOTOCORE_DEFAUT_SESSION_VARIABLES[max_attempts]',
          perf.default_max_attempts, CLI,
          "up to 6 attempts unless the user's AWS config says otherwise"),

    # -- the performance layer: custodian and c7n-org (CUSTODIAN_EXT_PERF=0: off) ------
    Patch('c7n_org.cli:resolve_regions', org_order.resolved_regions, ('c7n-org',),
          "c7n-org resolves each account's regions between its job submissions; the pack "
          "resolves them beforehand (accounts at once) to start the jobs in its own order",
          signature='(regions, account)', always=False),
    Patch('botocore.session:create_loader', perf.shared_loader, CLI,
          "one data loader per process: each botocore JSON model parsed once",
          signature='(search_path_string=None)', always=False),
    Patch('botocore.client:ClientCreator._load_service_model', perf.shared_service_model,
          CLI, "one ServiceModel per service model, not one per client",
          signature='(self, service_name, api_version=None)', always=False),
    Patch('botocore.client:ClientCreator._create_methods', perf.shared_methods, CLI,
          "operation methods generated once per service model (~600 for EC2)",
          signature='(self, service_model)', always=False),
    Patch('botocore.client:ClientCreator._create_name_mapping', perf.shared_name_mapping,
          CLI, "the operation name mapping built once per service model",
          signature='(self, service_model)', always=False),
    Patch('botocore.hooks:accepts_kwargs', perf.remembered_accepts_kwargs, CLI,
          "inspect runs for ~300 handlers of every new session; a function (also under a "
          "bound method or partial) cannot change",
          signature='(func)', always=False),
    Patch('botocore.hooks:EventAliaser.__init__', perf.shared_alias_cache, CLI,
          "aliased event names are a pure function of the name: one cache per process",
          signature='(self, event_emitter, event_aliases=None)', always=False),
    Patch('c7n.credentials:SessionFactory.update', perf.session_client_cache, CLI,
          "marks the sessions c7n makes, whose clients are then cached",
          signature='(self, session)', always=False),
    Patch('boto3.session:Session.client', perf.cached_client, CLI,
          "one client per service, region and endpoint in a c7n session (~100 per "
          "account-region otherwise)",
          signature='(self, service_name, region_name=None, api_version=None, use_ssl=True, '
                    'verify=None, endpoint_url=None, aws_access_key_id=None, '
                    'aws_secret_access_key=None, aws_session_token=None, config=None, '
                    'aws_account_id=None)', always=False),
    Patch('botocore.client:BaseClient._make_api_call', perf.shared_reads, CLI,
          "reads every policy of an account-region makes the same way answered once "
          "(runcache.SHARED_READS)", signature='(self, operation_name, api_params)',
          always=False),
    Patch('botocore.httpsession:URLLib3Session._get_ssl_context', perf.shared_ssl_context,
          CLI, "the HTTP sessions verifying against one CA bundle share one SSL context",
          signature='(self)', always=False),
    Patch('botocore.httpsession:URLLib3Session._setup_ssl_cert', perf.loaded_ca_once, CLI,
          "the CA bundle loaded into that context once, not for every new HTTPS connection "
          "(25-40 ms of CPU each with OpenSSL 3)",
          signature='(self, conn, url, verify)', always=False),
    Patch('c7n.credentials:SessionFactory.__call__', perf.shared_base_session, CLI,
          "one caller session per profile to assume roles from, not one per account-region; "
          "the sessions of one assumed role share its clients",
          signature='(self, assume=True, region=None)', always=False),
    Patch('c7n.cache:factory', runcache.run_cache_factory, CLI,
          "c7n's file cache outlives the run (15 minutes): an in-memory cache for one "
          "account-region of one run instead", signature='(config)', always=False),
    Patch('c7n.query:QueryResourceManager.get_cache_key', runcache.query_in_cache_key, CLI,
          "c7n's cache key leaves out the policy's query: block",
          signature='(self, query)', always=False),
    Patch('c7n.policy:PullMode.run', runcache.acting_policies_bypass, CLI,
          "a policy that acts reads live and empties the cache when it ends; on PullMode.run "
          "so that Policy.__call__, Policy.run (c7n-org) and every other entry point obey it",
          signature='(self, *args, **kw)', always=False),
    Patch('c7n.manager:ResourceManager.executor_factory', perf.carrying_executor, CLI,
          "c7n reads resource details on its own threads; on a shared client they sent the "
          "user agent (and api-stats) of the policy that used it last, not their own",
          signature="(max_workers=None, thread_name_prefix='', initializer=None, "
                    "initargs=())", always=False),
    Patch('c7n.element:Element.executor_factory', perf.carrying_executor, CLI,
          "filters' and actions' thread pools: the same, for the calls they make",
          signature="(max_workers=None, thread_name_prefix='', initializer=None, "
                    "initargs=())", always=False),
    Patch('c7n.resources.aws:AWS.initialize_policies', concurrency.region_major_plan, CLI,
          "custodian run ordered region by region, so a region's policies share one cache; "
          "policies that only read planned to run at once (CUSTODIAN_EXT_THREADS)",
          signature='(self, policy_collection, options)', always=False),
    Patch('c7n.policy:Policy.__call__', concurrency.scheduled_call, ('custodian',),
          "custodian run waits on the network one policy and one region after another: "
          "planned policies run on threads, and c7n's loop gets each outcome in its order",
          signature='(self)', always=False),
    Patch('c7n_org.cli:run_account', concurrency.account_region_run, ('c7n-org',),
          "an account-region's policies run on threads while their calls wait on the "
          "network; the cache, cached clients and assumed role live for the account-region",
          signature='(account, region, policies_config, output_path, cache_period, '
                    'cache_path, metrics, dryrun, debug)', always=False),
    Patch('c7n_org.cli:environ', concurrency.shared_environ, ('c7n-org',),
          "the account's tags are set in the environment around each run_account; runs of "
          "one account-region on threads overlap, so the first sets them, the last restores",
          signature='(**kw)', always=False),
    Patch('c7n.output:LogOutput.join_log', concurrency.own_thread_logs, CLI,
          "policies run on threads: a policy's custodian-run.log takes its own thread's "
          "lines, not those of the policies running beside it",
          signature='(self)', always=False),
    Patch('c7n.utils:format_string_values', policy.brace_free_strings_kept, CLI,
          "every policy's variables are expanded in every account-region: strings without "
          "a brace format to themselves and are kept, not formatted",
          signature="(obj, err_fallback=(<class 'IndexError'>, <class 'KeyError'>), "
                    "formatter=None, *args, **kwargs)", always=False),
    Patch('c7n_org.cli:load_available', perf.load_available_once, ('c7n-org',),
          "c7n-org reloads every resource module in each account-region; once is enough",
          signature='(resources=True)', always=False),
)
