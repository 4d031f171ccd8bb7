# Every target bootstraps .venv from the pinned requirements on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install test demo demo-respond validate clean

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
	$(BIN)/custodian validate policies/detect/*.yml

clean:
	rm -rf $(VENV) out demo-output build .pytest_cache
