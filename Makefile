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
# project status transitions and the warm pool's claim race two writers by compare-and-set
# on both; the production tests lock rows, which Postgres checks more strictly than SQLite).
POSTGRES_PASS_TESTS := tests/doce/test_text_input.py tests/projects/test_api_fuzz.py \
  tests/projects/test_status.py tests/projects/test_pool.py tests/productions
# The real-stack lane: tests that mostly wait on containers, Caddy and browsers.
STACK_TESTS := tests/e2e tests/integration

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
	@rm -rf "$(TEST_DATA)" && mkdir -p "$(TEST_DATA)/stacks" "$(TEST_DATA)/units"
	@# Layers point one way (contracts in pyproject.toml); a broken contract fails the run.
	$(UV) run --frozen lint-imports
	@# Types: mypy with django-stubs and the pydantic plugin (config in pyproject.toml).
	DOCE_DATA_DIR="$(TEST_DATA)" $(UV) run --frozen mypy
ifeq ($(strip $(PYTEST_ARGS)),)
	@# Two pytest processes side by side, each with its own data directory: the real-stack
	@# tests mostly wait on containers and browsers, so the rest runs meanwhile on the second
	@# core. The units lane then runs the Postgres pass (tests marked `postgres` need Postgres
	@# as Django's database; the queue tests and POSTGRES_PASS_TESTS run again on it).
	@# Each line is prefixed with its lane; the run fails if either lane fails.
	@set -o pipefail; \
	( DOCE_DATA_DIR="$(TEST_DATA)/stacks" DOCE_LOG_LEVEL=WARNING \
	    $(UV) run --frozen pytest -m "not postgres" $(STACK_TESTS) 2>&1 \
	    | sed -u 's/^/[stacks] /' ) & stacks=$$!; \
	( ( DOCE_DATA_DIR="$(TEST_DATA)/units" DOCE_LOG_LEVEL=WARNING \
	    $(UV) run --frozen pytest -m "not postgres" $(addprefix --ignore=,$(STACK_TESTS)) && \
	  DOCE_DATA_DIR="$(TEST_DATA)/units" DOCE_LOG_LEVEL=WARNING \
	    DATABASE_URL="$(QUEUE_TEST_POSTGRES)/doce_queue_$$$$" $(UV) run --frozen pytest \
	    tests/jobqueue $(POSTGRES_PASS_TESTS) ) 2>&1 | sed -u 's/^/[units]  /' ) & units=$$!; \
	wait $$stacks; rs=$$?; wait $$units; ru=$$?; \
	echo "lanes: stacks exit $$rs, units exit $$ru"; test $$rs -eq 0 -a $$ru -eq 0
else
	DOCE_DATA_DIR="$(TEST_DATA)" DOCE_LOG_LEVEL=WARNING $(UV) run --frozen pytest $(PYTEST_ARGS)
endif

lint: deps-dev
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
