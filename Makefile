# doce: two commands on a fresh machine.
#   make run   install everything and start doce (web + worker) on the embedded default
#   make test  install the dev dependencies and run the whole test suite
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
UV := $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
TEST_DATA := $(CURDIR)/.test-data
# Server for the queue tests' Postgres pass; each run creates (and drops) its own database.
QUEUE_TEST_POSTGRES ?= postgres://postgres@127.0.0.1:5432
# Tests besides tests/jobqueue that the Postgres pass runs too (Postgres refuses NUL and
# other input that SQLite stores: the text-input tests and the API fuzz run on both; the
# project status transitions race two writers by compare-and-set on both; the production
# tests lock rows, which Postgres checks more strictly than SQLite).
POSTGRES_PASS_TESTS := tests/doce/test_text_input.py tests/projects/test_api_fuzz.py \
  tests/projects/test_status.py tests/productions

.PHONY: run test lint uv deps deps-dev

uv:
	@command -v uv >/dev/null 2>&1 || test -x "$(UV)" || python3 -m pip install --user --quiet uv

deps: uv
	@$(UV) sync --frozen --no-dev --inexact --quiet

deps-dev: uv
	@$(UV) sync --frozen --quiet

run: deps
	@$(UV) run --frozen --no-dev python manage.py migrate --no-input -v0
	@$(UV) run --frozen --no-dev python manage.py collectstatic --no-input -v0
	@$(UV) run --frozen --no-dev python manage.py prepare_runtime $(if $(filter 1 true yes,$(DOCE_OFFLINE_IMAGES)),--offline,)
	@$(UV) run --frozen --no-dev python manage.py serve

test: deps-dev
	@rm -rf "$(TEST_DATA)" && mkdir -p "$(TEST_DATA)"
	@# Layers point one way (contracts in pyproject.toml); a broken contract fails the run.
	$(UV) run --frozen lint-imports
	@# Types: mypy with django-stubs and the pydantic plugin (config in pyproject.toml).
	DOCE_DATA_DIR="$(TEST_DATA)" $(UV) run --frozen mypy
ifeq ($(strip $(PYTEST_ARGS)),)
	@# Tests marked `postgres` need Postgres as Django's database: they run in the second pass.
	DOCE_DATA_DIR="$(TEST_DATA)" DOCE_LOG_LEVEL=WARNING $(UV) run --frozen pytest -m "not postgres"
	@# Again with Postgres as Django's database: the queue tests and POSTGRES_PASS_TESTS.
	DOCE_DATA_DIR="$(TEST_DATA)" DOCE_LOG_LEVEL=WARNING \
	  DATABASE_URL="$(QUEUE_TEST_POSTGRES)/doce_queue_$$$$" $(UV) run --frozen pytest \
	  tests/jobqueue $(POSTGRES_PASS_TESTS)
else
	DOCE_DATA_DIR="$(TEST_DATA)" DOCE_LOG_LEVEL=WARNING $(UV) run --frozen pytest $(PYTEST_ARGS)
endif

lint: deps-dev
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
