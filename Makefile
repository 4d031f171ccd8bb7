# Every target bootstraps .venv from the pinned requirements on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

# Settings and regions for the respond and recover targets.
VARS    ?= policies/vars.yml
REGIONS ?=
REGION_ARGS = $(foreach r,$(REGIONS),-r $(r))

.PHONY: install test demo demo-respond validate clean respond recover recover-preview

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -e .
	@touch $@

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/custodian-ext demo

demo-respond: $(STAMP)
	$(BIN)/custodian-ext demo --respond

validate: $(STAMP)
	$(BIN)/custodian validate policies/detect/*.yml policies/respond/*.yml policies/recover/*.yml

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

clean:
	rm -rf $(VENV) out demo-output respond-output recover-output* build .pytest_cache
