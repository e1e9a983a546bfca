# Services Publics+ backend. `make help` lists the targets.
# A fresh machine needs only python3 (3.11+) with pip: the targets build .venv themselves.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
SYNC_STAMP := $(VENV)/.synced

.DEFAULT_GOAL := help
.PHONY: help install lock run test test-pg lint openapi-lint openapi-check fuzz fmt migrate bench docs clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv

# --locked: install exactly uv.lock, and fail if a pyproject changed without `make lock`.
$(SYNC_STAMP): $(UV) pyproject.toml shared/pyproject.toml gateway/pyproject.toml services/*/pyproject.toml uv.lock
	$(UV) sync --all-packages --inexact --locked --python $(BIN)/python
	@touch $@

lock: $(UV) ## Update uv.lock after changing a dependency in a pyproject
	$(UV) lock --python $(BIN)/python

install: $(SYNC_STAMP) ## Create .venv and install the workspace (done by the other targets)

run: $(SYNC_STAMP) ## Start gateway :8000 and the four services on SQLite, with demo data
	$(BIN)/python deploy/local/run.py

test: $(SYNC_STAMP) ## Run the whole suite (SQLite; PostgreSQL too when SPP_TEST_DATABASE_URL is set)
	$(BIN)/pytest

test-pg: $(SYNC_STAMP) ## Run the whole suite on the local PostgreSQL
	SPP_TEST_DATABASE_URL=$${SPP_TEST_DATABASE_URL:-postgresql+asyncpg://root@127.0.0.1:5432/test} $(BIN)/pytest

lint: $(SYNC_STAMP) ## ruff, mypy and the import rules between packages
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shared/spp_shared gateway/spp_gateway services/sites/spp_sites services/feedback/spp_feedback services/indicators/spp_indicators services/labelling/spp_labelling
	$(BIN)/lint-imports

# The merged OpenAPI of a running platform (tools/openapi_check.py; needs Node's npx).
openapi-lint: $(SYNC_STAMP) ## Redocly lint and openapi-typescript over the merged OpenAPI
	$(BIN)/python tools/openapi_check.py --lint --typescript

openapi-check: $(SYNC_STAMP) ## openapi-lint, then schemathesis for 2 minutes: 0 failures (CI)
	$(BIN)/python tools/openapi_check.py --lint --typescript --fuzz 120

FUZZ_SECONDS ?= 900
fuzz: $(SYNC_STAMP) ## schemathesis over the merged OpenAPI for FUZZ_SECONDS (15 min)
	$(BIN)/python tools/openapi_check.py --fuzz $(FUZZ_SECONDS)

fmt: $(SYNC_STAMP) ## Format and fix what ruff can
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

migrate: $(SYNC_STAMP) ## Apply every service's migrations and reference data
	for s in sites feedback indicators labelling; do $(BIN)/python -m spp_$$s migrate || exit 1; done
	$(BIN)/python -m spp_gateway migrate

bench: $(SYNC_STAMP) ## Run the benchmarks (import, export, gateway, identity, site GET); prints figures and ratios
	$(BIN)/python bench/import_bench.py
	$(BIN)/python bench/export_bench.py
	$(BIN)/python bench/gateway_bench.py
	$(BIN)/python bench/identity_bench.py
	$(BIN)/python bench/site_get_bench.py

docs: $(SYNC_STAMP) ## Render docs/permissions.md from the permission matrix
	$(BIN)/python tools/render_permissions.py

clean: ## Remove the local databases and logs (.var)
	rm -rf .var
