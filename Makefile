# Premier: two commands on a fresh clone.
#   make run   install into .venv, migrate, create demo users and data, serve on http://127.0.0.1:8000
#   make test  install into .venv (if needed), and Debian's chromium for the browser tests, and run the test suite
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
DEMO_CUSTOMERS ?= 3000

.PHONY: run test lint format openapi install browser migrate demo worker beat clean

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

# The browser tests (tests/browser) drive Debian's headless Chromium; install it when it is missing.
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Debian's chromium and chromium-driver for the browser tests (tests/browser)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	else \
		echo "chromium or chromedriver is missing and this is not root with apt-get: the browser tests will be" \
			"skipped (they fail when CI=true). Install them with: sudo apt-get install chromium chromium-driver"; \
	fi

test: install browser
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
