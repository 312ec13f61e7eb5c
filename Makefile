# netstack — the two commands of the README's quickstart, and the checks CI runs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test pytest pytest-asyncio pytest-uvloop lint typecheck bench tox clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Reinstall when the project's metadata changes.
$(VENV)/.installed-demo: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[uvloop,tls]'
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test,lint,uvloop,tls,ecosystem]'
	touch $@ $(VENV)/.installed-demo

demo: $(VENV)/.installed-demo
	$(BIN)/netstack demo

test: $(VENV)/.installed-test lint typecheck pytest

# The whole suite on each event loop: asyncio's, then uvloop (the one netstack.run picks).
# NETSTACK_LOOP chooses the tests' loop and also what netstack.run picks in programs they start.
pytest: pytest-asyncio pytest-uvloop

# The asyncio pass runs the TAP tests with offloads off (NETSTACK_OFFLOAD=0), the uvloop pass
# with them on (TapLink's default): every TAP peer test meets the kernel both ways.
pytest-asyncio: $(VENV)/.installed-test
	NETSTACK_LOOP=asyncio NETSTACK_OFFLOAD=0 $(BIN)/python -m pytest $(PYTEST_ARGS)

pytest-uvloop: $(VENV)/.installed-test
	NETSTACK_LOOP=uvloop $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check netstack tests benchmarks examples
	$(BIN)/ruff format --check netstack tests benchmarks examples

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy --strict netstack

bench: $(VENV)/.installed-test
	$(BIN)/python -m benchmarks

tox: $(VENV)/.installed-test
	$(BIN)/python -m pip install -q tox
	$(BIN)/tox

clean:
	rm -rf $(VENV) .tox .mypy_cache .ruff_cache .pytest_cache .hypothesis build *.egg-info
