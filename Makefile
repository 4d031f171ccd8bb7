# Every target bootstraps .venv from the pinned requirements on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install test demo validate clean recover recover-preview

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

validate: $(STAMP)
	$(BIN)/custodian validate policies/detect/*.yml

clean:
	rm -rf $(VENV) out demo-output recover-output* build .pytest_cache

# X8 recover: restores into new object versions, volumes and DB instances
# (policies/recover). Without CONFIRM=yes it is a --dryrun: it lists what the
# policies select and changes nothing. recover-preview runs the actions in
# report-only mode (restore_preview: true) to show each planned restore.
VARS    ?= policies/vars.yml
RECOVER_OUT ?= recover-output
REGIONS ?=
RECOVER_RUN = $(BIN)/custodian run --cache-period 0 $(foreach r,$(REGIONS),-r $(r)) policies/recover

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
