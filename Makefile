# Set-up is part of every target: a fresh machine needs only python3 and pip.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-slow lint bench clean

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

clean:
	rm -rf $(VENV) runs
