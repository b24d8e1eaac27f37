# Two commands do all the set-up on a fresh clone: `make run` and `make test`.
# Each creates .venv with the machine's python3 on first use, installs the
# project into it (again only when pyproject.toml changes), then does its job.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test golden claims bench clean

run: $(STAMP)  ## the main job: the article's push notification
	$(BIN)/spiralsim run scenarios/push_spike.toml

test: $(STAMP)  ## the tests (CI=true adds the long statistical checks)
	$(BIN)/pytest

golden: $(STAMP)  ## regenerate tests/golden/ on purpose, after a change meant to alter results
	$(BIN)/python tests/golden.py

claims: $(STAMP)  ## run every claim of the seed article and write docs/article-claims.md
	$(BIN)/python tests/claims.py

bench: $(STAMP)  ## speed and memory of every shipped scenario
	$(BIN)/python benchmarks/bench.py

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
