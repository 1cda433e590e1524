# The single source of commands. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .local/venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
BENCH ?= *

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ needed, found " + sys.version' 
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip
	@$(BIN)/python -m pip install -q -e '.[dev]' > .local/pip.log 2>&1 || { cat .local/pip.log; exit 1; }
	@touch $@

.PHONY: venv
venv: $(STAMP) ## create .local/venv with the project and its dev tools

.PHONY: up
up: $(STAMP) ## provision (cached) and start Kafka, both TimescaleDB clusters and Redis
	@$(BIN)/python -m ess_stack up

.PHONY: down
down: ## stop everything the stack started (by PID)
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m ess_stack down; else echo "nothing to stop"; fi

.PHONY: status
status: $(STAMP) ## show the local stack's processes and endpoints
	@$(BIN)/python -m ess_stack status

.PHONY: kafka
kafka: $(STAMP) ## one of Kafka's own tools on the local broker: make kafka ARGS="kafka-consumer-groups --list"
	@$(BIN)/python -m ess_stack kafka $(ARGS)

.PHONY: reset
reset: $(STAMP) ## stop the stack and delete its data (caches are kept)
	@$(BIN)/python -m ess_stack reset

.PHONY: test
test: up ## install, start the stack if needed, run the whole test suite
	@$(BIN)/python -m pytest $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: $(STAMP) ## run the unit tests only (no servers needed)
	@$(BIN)/python -m pytest -m unit $(PYTEST_ARGS)

.PHONY: test-integration
test-integration: up ## start the stack if needed, run the integration tests (real servers)
	@$(BIN)/python -m pytest -m integration $(PYTEST_ARGS)

.PHONY: test-e2e
test-e2e: up ## start the stack if needed, run the end-to-end tests (services as processes)
	@$(BIN)/python -m pytest -m e2e $(PYTEST_ARGS)

.PHONY: bench
bench: up ## run the benchmarks, write bench-results/*.json (BENCH=name runs one)
	@mkdir -p bench-results
	@for f in benchmarks/$(BENCH).py; do \
		grep -q '^def main' $$f && grep -q '__main__' $$f || continue; \
		echo "== $$f"; $(BIN)/python $$f || exit 1; \
	done

.PHONY: lint
lint: $(STAMP) ## ruff, mypy (strict) and the import contracts (services depend only on libs/)
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@$(BIN)/mypy libs services tests benchmarks
	@$(BIN)/lint-imports --no-cache
	@if command -v promtool >/dev/null; then $(MAKE) --no-print-directory rules; \
	 else echo "promtool: not installed yet (make up installs it); alert rules not checked"; fi

.PHONY: rules
rules: ## promtool: check the alert rules and both Prometheus configs, run the rule unit tests
	@for c in monitoring/prometheus/*.yml; do out=$$(promtool check config $$c 2>&1) || { echo "$$out"; exit 1; }; done
	@cd monitoring/rules/tests && out=$$(promtool test rules *.test.yml 2>&1) || { echo "$$out"; exit 1; }
	@echo "alert rules and Prometheus configs: ok"

.PHONY: fmt
fmt: $(STAMP) ## apply ruff's formatter and safe fixes
	@$(BIN)/ruff format .
	@$(BIN)/ruff check --fix .

.PHONY: run
run: $(STAMP) ## start the stack and the whole pipeline, show what flows; Ctrl-C stops
	@$(BIN)/python -m ess_stack run

.PHONY: deploy-check
deploy-check: $(STAMP) ## validate docker-compose.yml and the k8s overlays (with the tools present)
	@$(BIN)/pytest -q tests/unit/test_deploy_manifests.py
	@if docker compose version >/dev/null 2>&1; then docker compose config -q && echo "compose: ok"; \
	 elif command -v docker-compose >/dev/null; then docker-compose config -q && echo "compose: ok"; \
	 else echo "compose: no docker compose here, schema not checked"; fi
	@K=$$(command -v kustomize || echo $$HOME/go/bin/kustomize); if [ -x "$$K" ]; then \
	 for o in k8s/overlays/*/; do $$K build $$o >/dev/null && echo "kustomize $$o: ok"; done; \
	 else echo "kustomize: not installed (go install sigs.k8s.io/kustomize/kustomize/v5@v5.4.3)"; fi
