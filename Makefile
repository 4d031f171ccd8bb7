# Every target bootstraps .venv from the pinned requirements on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Three pytest-xdist workers, a test file each at a time: most tests wait on a console
# script or CloudTrail's pacing, so three share 2 cores well (PYTEST_ARGS= runs in-line).
PYTEST_ARGS ?= -n 3 --dist loadfile

# Settings and regions for the respond and recover targets.
VARS    ?= policies/vars.yml
REGIONS ?=
REGION_ARGS = $(foreach r,$(REGIONS),-r $(r))

.PHONY: install lint test runbook-map demo demo-respond validate clean respond recover recover-preview bench bench-cpu bench-walltime bench-memory bench-catalogue bench-trail-logs bench-faults

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -e .
	@# bytecode, as pip writes it for a regular install: the editable install has none, and
	@# with PYTHONDONTWRITEBYTECODE set every command would compile the pack (~0.3 s) anew
	$(BIN)/python -m compileall -q custodian_ext custodian_ext_dev bench
	@touch $@

install: $(STAMP)

# ruff's settings are in pyproject.toml ([tool.ruff]: line length 100, the rules checked).
lint: $(STAMP)
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# README's "From runbook step to policy, code and test", generated (tests/inprocess/test_runbook_map.py)
runbook-map: $(STAMP)
	$(BIN)/python -m custodian_ext_dev.runbook_map --write

demo: $(STAMP)
	$(BIN)/python -m custodian_ext_dev.demo

demo-respond: $(STAMP)
	$(BIN)/python -m custodian_ext_dev.demo --respond

validate: $(STAMP)
	$(BIN)/custodian validate policies/detect/*.yml policies/respond/*.yml policies/recover/*.yml policies/react/*.yml

# Contain (policies/respond): changes resources only with CONFIRM=yes; a dry run otherwise.
#   make respond                                  # dry run: what would be contained
#   make respond CONFIRM=yes REGIONS="us-east-1 eu-north-1"
#   make respond CONFIRM=yes RESPOND=policies/respond/x1.yml RESPOND_OUT=respond-output
RESPOND     ?= policies/respond
RESPOND_OUT ?= respond-output
respond: $(STAMP)
	@if [ "$(CONFIRM)" = "yes" ]; then \
	  echo "make respond: CONFIRM=yes: running $(RESPOND) for real"; \
	  $(BIN)/custodian run -s $(RESPOND_OUT) --vars-file $(VARS) --cache-period 0 $(REGION_ARGS) $(RESPOND); \
	else \
	  echo "make respond: dry run, nothing is changed (CONFIRM=yes to act)"; \
	  $(BIN)/custodian run --dryrun -s $(RESPOND_OUT) --vars-file $(VARS) --cache-period 0 $(REGION_ARGS) $(RESPOND); \
	fi

# -- run modes: CI gates (README "Run modes") ----------------------------------
# make audit                        the detect policies for the current AWS credentials
# make org-audit ACCOUNTS=accounts.yml   the same across an organization, through c7n-org
# Exit status: 0 nothing at or above FAIL_ON; 1 findings at or above it; 2 a policy errored
# or did not run (the report's gate), or the run itself failed.
FAIL_ON   ?= high
VARS      ?= policies/vars.yml
DETECT    ?= policies/detect
REGIONS   ?=
OUT       ?= out/audit
ORG_OUT   ?= out/org
REPORT    ?= out/report
ACCOUNTS  ?=
ORG_ARGS  ?=
REGION_ARGS = $(foreach r,$(REGIONS),-r $(r))

.PHONY: audit org-audit

audit: $(STAMP)
	rm -rf $(OUT) $(REPORT)
	@$(BIN)/custodian run -s $(OUT) --cache-period 0 --vars-file $(VARS) $(DETECT) $(REGION_ARGS); \
	run=$$?; \
	if [ ! -d $(OUT) ]; then exit $$run; fi; \
	$(BIN)/custodian-ext report $(OUT) --format md,json,junit -o $(REPORT) --fail-on $(FAIL_ON); \
	gate=$$?; \
	if [ $$gate -eq 0 ] && [ $$run -ne 0 ]; then \
	  echo "make audit: custodian run exited $$run" >&2; exit 2; fi; \
	exit $$gate

org-audit: $(STAMP)
	@test -n "$(ACCOUNTS)" || { echo "make org-audit: name the accounts file: make org-audit ACCOUNTS=accounts.yml" >&2; exit 1; }
	$(BIN)/custodian-ext bundle $(DETECT) -o build/detect.yml
	$(BIN)/c7n-org validate -c $(ACCOUNTS) -u build/detect.yml $(ORG_ARGS)
	rm -rf $(ORG_OUT) $(REPORT) && mkdir -p $(ORG_OUT)
	@( $(BIN)/c7n-org run -c $(ACCOUNTS) -u build/detect.yml -s $(ORG_OUT) --cache-period 0 \
	    $(REGION_ARGS) $(ORG_ARGS) 2>&1; echo $$? > $(ORG_OUT).rc ) | tee $(ORG_OUT).log; \
	run=$$(cat $(ORG_OUT).rc); \
	if [ -z "$$(ls -A $(ORG_OUT))" ]; then exit $$run; fi; \
	$(BIN)/custodian-ext org-check -c $(ACCOUNTS) -u build/detect.yml -s $(ORG_OUT) \
	    --log $(ORG_OUT).log --mark-missing $(REGION_ARGS) $(ORG_ARGS); \
	check=$$?; \
	$(BIN)/custodian-ext report $(ORG_OUT) --format md,json,junit -o $(REPORT) --fail-on $(FAIL_ON); \
	gate=$$?; \
	if [ $$gate -eq 0 ] && [ $$check -ne 0 ]; then exit 2; fi; \
	exit $$gate

# X8 recover: restores into new object versions, volumes and DB instances
# (policies/recover). Without CONFIRM=yes it is a --dryrun: it lists what the
# policies select and changes nothing. recover-preview runs the actions in
# report-only mode (restore_preview: true) to show each planned restore.
RECOVER_OUT ?= recover-output
RECOVER_RUN = $(BIN)/custodian run --cache-period 0 $(REGION_ARGS) policies/recover

recover: $(STAMP)
	@if [ "$(CONFIRM)" = "yes" ]; then \
		$(RECOVER_RUN) -s $(RECOVER_OUT) --vars-file $(VARS); \
	else \
		echo "make recover: dry run, nothing is changed (CONFIRM=yes restores; make recover-preview shows each restore)"; \
		$(RECOVER_RUN) --dryrun -s $(RECOVER_OUT)-dryrun --vars-file $(VARS); \
	fi

recover-preview: $(STAMP)
	@mkdir -p $(RECOVER_OUT)-preview
	$(BIN)/python -c "import sys, yaml; d = yaml.safe_load(open(sys.argv[1])) or {}; d['restore_preview'] = True; yaml.safe_dump(d, open(sys.argv[2], 'w'))" $(VARS) $(RECOVER_OUT)-preview/vars.yml
	$(RECOVER_RUN) -s $(RECOVER_OUT)-preview --vars-file $(RECOVER_OUT)-preview/vars.yml

# -- performance (docs/performance.md) -----------------------------------------
# make bench                 both benchmarks below, one after the other
# make bench-cpu             client CPU and API calls, stock Custodian against the pack:
#                            N=10 accounts x R=4 regions (BENCH_ARGS="-n 20 -r 2 --docs docs/performance.md")
# make bench-walltime        wall time at AWS latency and rate limits, next to its floor:
#                            20 accounts x every enabled region (WALLTIME_ARGS="-n 3 -r 4 --workers 8")
# make bench-memory          peak RSS of the c7n-org sweep at 5 and at 20 accounts
BENCH_ARGS ?=
WALLTIME_ARGS ?=
bench: bench-cpu bench-walltime

bench-cpu: $(STAMP)
	$(BIN)/python bench/sweep.py $(BENCH_ARGS)

bench-walltime: $(STAMP)
	$(BIN)/python bench/walltime.py $(WALLTIME_ARGS)

bench-memory: $(STAMP)
	$(BIN)/python bench/sweep.py --memory 5,20 -r 2 $(BENCH_ARGS)

# make bench-catalogue        activity catalogue: indexed classify against a linear scan
bench-catalogue: $(STAMP)
	$(BIN)/python bench/catalogue.py

# make bench-trail-logs       activity review: trail-log reader memory at N and 10N files, a sweep per source
bench-trail-logs: $(STAMP)
	$(BIN)/python bench/trail_logs.py $(BENCH_ARGS)

# A detect sweep with injected faults against a clean one (bench/faults.py).
bench-faults: $(STAMP)
	$(BIN)/python bench/faults.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) out demo-output respond-output recover-output* build bench-output .pytest_cache
