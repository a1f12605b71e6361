# gsmgw developer and user entry points. `make demo` and `make test` do all the
# set-up they need (a local virtual environment in .venv) on a fresh machine.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
ARGS   ?=

.PHONY: demo test test-fast lint format bench bench-smoke clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "gsmgw needs Python 3.11 or newer (found: $$($(PYTHON) --version))"; exit 1; }
	@$(PYTHON) -m venv $(VENV) || \
	  { echo "python venv module missing: on Debian/Raspberry Pi OS run 'sudo apt-get install python3-venv'"; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@ $(VENV)/.installed-run

demo: $(VENV)/.installed-run
	$(BIN)/gsmgw demo $(ARGS)

test: $(VENV)/.installed-test
	$(BIN)/ruff check gsmgw tests bench
	$(BIN)/python -m pytest $(ARGS)

# The fast lane: everything but the tests marked slow (long end-to-end runs).
test-fast: $(VENV)/.installed-test
	$(BIN)/ruff check gsmgw tests bench
	$(BIN)/python -m pytest -m "not slow" $(ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check gsmgw tests bench

format: $(VENV)/.installed-test
	$(BIN)/ruff format gsmgw tests bench

bench: $(VENV)/.installed-test
	$(BIN)/python -m bench $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis build *.egg-info
