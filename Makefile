# Premier: two commands on a fresh clone.
#   make run   install into .venv, migrate, create demo users and data, then start the web server, a Celery
#              worker and beat (Procfile, honcho; Ctrl-C stops all three) on http://$(HOST):$(PORT)
#   make test  install into .venv (if needed), and Debian's chromium for the browser tests, and run the test suite
#   make reset-demo  delete the demo's databases in var/ (keeps .venv) and build the demo again;
#                    `make run RESET=1` does the same, then runs
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
DEMO_CUSTOMERS ?= 3000
VAR := $(or $(PREMIER_VAR_DIR),var)

.PHONY: run test lint format openapi install browser migrate demo reset-demo worker beat clean

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

run: $(if $(filter 1,$(RESET)),reset-demo,demo)
	@echo "Serving on http://$(HOST):$(PORT)/  API docs: http://$(HOST):$(PORT)/api/v1/docs"
	@echo "With a Celery worker and beat on $${CELERY_BROKER_URL:-the embedded broker ($(VAR)/celery-broker.sqlite3)}; Ctrl-C stops all three."
	PATH="$(abspath $(BIN)):$$PATH" HOST=$(HOST) PORT=$(PORT) $(BIN)/python -m config.procfile

# Stop `make run` first. Removes the SQLite database, the broker file and the demo's mail, then rebuilds.
reset-demo: install
	rm -rf $(VAR)/premier.sqlite3 $(VAR)/premier.sqlite3-wal $(VAR)/premier.sqlite3-shm \
		$(VAR)/celery-broker.sqlite3 $(VAR)/celery-broker.sqlite3-journal $(VAR)/demo-mail
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_users
	$(BIN)/python manage.py setup_demo --customers $(DEMO_CUSTOMERS)

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
