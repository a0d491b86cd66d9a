# Premier: two commands on a fresh clone.
#   make run   install into .venv, migrate, create demo users and data, serve on http://127.0.0.1:8000
#   make test  install into .venv (if needed) and run the test suite
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
DEMO_CUSTOMERS ?= 3000

.PHONY: run test lint format openapi install migrate demo worker beat clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

migrate: install
	$(BIN)/python manage.py migrate --noinput

demo: migrate
	$(BIN)/python manage.py seed_users
	$(BIN)/python manage.py setup_demo --customers $(DEMO_CUSTOMERS)

run: demo
	@echo "Serving on http://$(HOST):$(PORT)/  API docs: http://$(HOST):$(PORT)/api/v1/docs"
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

openapi: install
	$(BIN)/python manage.py export_openapi_schema --api config.api.api --indent 2 --output openapi.json
	@echo "Wrote openapi.json"

worker: install
	$(BIN)/celery -A config worker --loglevel=info

beat: install
	$(BIN)/python manage.py sync_beat
	$(BIN)/celery -A config beat --loglevel=info --scheduler django_celery_beat.schedulers:DatabaseScheduler

clean:
	rm -rf $(VENV) var
