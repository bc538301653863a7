# scimfleet — run `make help` for the list of targets.
SHELL := bash
.DEFAULT_GOAL := help
CARGO ?= cargo

.PHONY: help
help: ## Show this help
	@grep -hE '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

.PHONY: services
services: ## Start RabbitMQ and Redis if nothing listens on 5672 / 6379 (installs them if absent)
	@bash deploy/services.sh

.PHONY: build
build: ## Build every crate (debug)
	$(CARGO) build --workspace --all-targets

.PHONY: demo
demo: services ## Provision a sample organisation into three in-process SCIM apps
	$(CARGO) run --quiet --bin scimfleet -- demo

.PHONY: test
test: services ## Run the whole test suite against the real RabbitMQ and Redis
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --all-targets --profile $${NEXTEST_PROFILE:-default}; \
	else \
		$(CARGO) test --workspace --all-targets; \
	fi

.PHONY: bench
bench: services ## Benchmark the fleet against in-run HTTP and RabbitMQ limits (BENCH_QUICK=1: under a minute)
	$(CARGO) run --release --quiet -p scimfleet-bench

.PHONY: lint
lint: ## cargo fmt --check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

.PHONY: fmt
fmt: ## Format the code
	$(CARGO) fmt --all

.PHONY: schemas
schemas: ## Regenerate schemas/json/*.schema.json from the Rust types
	SCIMFLEET_UPDATE_SCHEMAS=1 $(CARGO) test --quiet -p scimfleet-schemas --test json_schemas
