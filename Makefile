# Every target bootstraps .venv from the pinned requirements on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install test demo validate clean respond

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
	$(BIN)/custodian validate policies/detect/*.yml policies/respond/*.yml

# Contain (policies/respond): changes resources only with CONFIRM=yes; a dry run otherwise.
#   make respond                                  # dry run: what would be contained
#   make respond CONFIRM=yes REGIONS="us-east-1 eu-north-1"
#   make respond CONFIRM=yes RESPOND=policies/respond/x1.yml OUT=respond-output
RESPOND ?= policies/respond
VARS    ?= policies/vars.yml
OUT     ?= respond-output
REGIONS ?=
respond: $(STAMP)
	@if [ "$(CONFIRM)" = "yes" ]; then \
	  echo "make respond: CONFIRM=yes: running $(RESPOND) for real"; \
	  $(BIN)/custodian run -s $(OUT) --vars-file $(VARS) --cache-period 0 $(foreach r,$(REGIONS),-r $(r)) $(RESPOND); \
	else \
	  echo "make respond: dry run, nothing is changed (CONFIRM=yes to act)"; \
	  $(BIN)/custodian run --dryrun -s $(OUT) --vars-file $(VARS) --cache-period 0 $(foreach r,$(REGIONS),-r $(r)) $(RESPOND); \
	fi

clean:
	rm -rf $(VENV) out demo-output respond-output build .pytest_cache
