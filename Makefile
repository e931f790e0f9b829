# Set-up is part of every target: a fresh machine needs only python3 and pip.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DOCS_STAMP := $(VENV)/.docs-installed-stamp

.PHONY: demo test test-slow lint bench clean docs docs-serve

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)  ## the main job on built-in defaults: every experiment and the report
	$(VENV)/bin/condensation reproduce --overwrite --out runs/reproduce

test: $(STAMP)  ## lint + the default (fast) test suite, one pytest worker per core (at most 4)
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest -q -n auto --maxprocesses 4

test-slow: $(STAMP)  ## the slow, quantitative checks of the paper's claims
	$(PY) -m pytest -q -m slow

bench: $(STAMP)
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_effective.py
	$(PY) benchmarks/bench_optimizers.py
	$(PY) benchmarks/bench_sweep.py

$(DOCS_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install -q -e '.[docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)  ## the documentation site into site/, strict: every example runs, a broken link fails
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

docs-serve: $(DOCS_STAMP)  ## the same site, served on http://127.0.0.1:8000 (rebuilt on edits)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve

clean:
	rm -rf $(VENV) runs site
