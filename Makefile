# fluxa_django — developer entry points. `make test` and `make demo` work on a fresh machine.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup services services-down check lint typecheck generated test demo bench docs clean

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

setup: $(STAMP)

services: setup
	bash scripts/services.sh up

services-down:
	bash scripts/services.sh down

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup
	$(VENV)/bin/mypy fluxa_django tests example_project bench

docs: setup
	$(VENV)/bin/mkdocs build --strict --site-dir .fluxa/site

generated: setup
	cd example_project && ../$(PY) manage.py fluxa_generate --check
	$(PY) -m django fluxa_generate --check --settings tests.settings

check: lint typecheck docs generated
	$(VENV)/bin/python -m pytest

test: services
	$(MAKE) check

demo: services
	bash scripts/demo.sh

bench: services
	$(VENV)/bin/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
