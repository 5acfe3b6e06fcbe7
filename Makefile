# The two quickstart commands: `make demo` and `make test`.
# Each creates .venv (once) with the project installed, then runs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test check clean

$(BIN)/ensemble: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: $(BIN)/ensemble
	$(BIN)/ensemble launch --splits 100
	$(BIN)/ensemble status --summary
	$(BIN)/ensemble sample --label 417

test: $(BIN)/ensemble
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup --durations=15

# The inner loop: the unit tier only (no Ray cluster, no S3 server, no browser), in about a minute.
check: $(BIN)/ensemble
	$(BIN)/python -m pytest -q -m unit

clean:
	rm -rf $(VENV) ensemble-run samples
