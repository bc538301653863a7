# scimfleet — run `make help` for the list of targets.
SHELL := bash
.DEFAULT_GOAL := help
CARGO ?= cargo

.PHONY: help
help: ## Show this help
	@grep -hE '^[a-z][a-z0-9-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

.PHONY: services
services: ## Start RabbitMQ and Redis if nothing listens on 5672 / 6379 (installs them if absent)
	@bash deploy/services.sh

.PHONY: build
build: ## Build every crate (debug)
	$(CARGO) build --workspace --all-targets

.PHONY: demo
demo: services ## Provision a sample organisation into three in-process SCIM apps
	$(CARGO) run --quiet --bin scimfleet -- demo

# Every test process writes its logs here (see devkit `test_log_dir`). It is
# emptied first, so the log check reads this run only; under target/, so a
# clean clone (CI) starts without one. Absolute: tests run in their crate's dir.
TEST_LOG_DIR := $(CURDIR)/target/test-logs
# The test that greps those logs for tokens and personal data (e-mail addresses, HR ids, names): run last.
# Its full path in the integration binary `it` (filters match it exactly).
LOG_CHECK := log_hygiene::suite_logs_hold_no_token_and_no_personal_data
# Tests that install the process's telemetry themselves (one subscriber per
# process): nextest gives every test a process; `cargo test` runs a binary's
# tests as threads of one process, so without nextest they run one at a time.
OWN_PROCESS := tracing::an_event_is_one_trace_from_intake_to_every_scim_request_and_survives_dead_letter_and_replay \
	trace_export_down::a_closed_collector_port_never_slows_or_stops_the_pipeline \
	log_hygiene::a_noisy_run_logs_no_token_and_no_personal_data

.PHONY: scim2
scim2: ## Install the independent SCIM server the interop tests provision against (scim2-server, in a venv under target/)
	@bash deploy/scim2-server.sh

.PHONY: browser
browser: ## Install the headless Chromium and chromedriver the browser tests drive (Debian's chromium, chromium-driver)
	@bash deploy/browser.sh

.PHONY: test
test: services scim2 browser ## Run the whole test suite against the real RabbitMQ and Redis, then check its logs
	@rm -rf '$(TEST_LOG_DIR)' && mkdir -p '$(TEST_LOG_DIR)'
	@export SCIMFLEET_TEST_LOG_DIR='$(TEST_LOG_DIR)'; \
	if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --all-targets --profile $${NEXTEST_PROFILE:-default} \
			-E 'not test(=$(LOG_CHECK))' && \
		$(CARGO) nextest run -p scimfleet --test it --profile $${NEXTEST_PROFILE:-default} \
			-E 'test(=$(LOG_CHECK))'; \
	else \
		$(CARGO) test --workspace --all-targets -- --skip $(LOG_CHECK) $(addprefix --skip ,$(OWN_PROCESS)) && \
		for t in $(OWN_PROCESS); do $(CARGO) test -p scimfleet --test it -- --exact $$t || exit 1; done && \
		$(CARGO) test -p scimfleet --test it -- --exact $(LOG_CHECK); \
	fi

.PHONY: test-cluster
test-cluster: services ## Start a local three-node RabbitMQ cluster and three-master Redis Cluster, and run the clustered tests on them
	@bash deploy/rabbitmq-cluster.sh start
	@export SCIMFLEET_RABBIT_CLUSTER="$$(bash deploy/rabbitmq-cluster.sh urls)" \
		"$$(bash deploy/redis-cluster.sh start | tail -n 1)"; \
	$(CARGO) nextest run --workspace --all-targets --profile $${NEXTEST_PROFILE:-default} \
		-E 'package(scimfleet) & test(/^(rabbit_cluster|redis_cluster)::/)'

# cargo-fuzz targets (fuzz/): the same functions run on stable, bounded, in
# `make test` (schemas/tests/fuzz.rs). Without nightly and cargo-fuzz this
# fails with what to install: asked to fuzz, it must not pass having fuzzed
# nothing. New inputs go to fuzz/target/corpus/, so the seeds stay as they are.
FUZZ_TARGETS := event job scim_response filter intake
FUZZ_SECONDS ?= 60

.PHONY: fuzz
fuzz: ## Fuzz each parser for FUZZ_SECONDS (60) with cargo-fuzz (needs a nightly toolchain and cargo-fuzz)
	@if ! $(CARGO) +nightly --version >/dev/null 2>&1 || ! $(CARGO) +nightly fuzz --version >/dev/null 2>&1; then \
		echo "make fuzz needs a nightly toolchain and cargo-fuzz:" >&2; \
		echo "  rustup toolchain install nightly && cargo install cargo-fuzz" >&2; \
		echo "the same targets run on stable, bounded, in make test (schemas/tests/fuzz.rs, intake/tests/request_props.rs)" >&2; \
		exit 1; \
	fi
	@for target in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/target/corpus/$$target && \
		$(CARGO) +nightly fuzz run $$target '$(CURDIR)/fuzz/target/corpus/'$$target '$(CURDIR)/fuzz/corpus/'$$target \
			-- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done

.PHONY: bench
bench: services ## Benchmark the fleet against in-run HTTP and RabbitMQ limits (BENCH_QUICK=1: under a minute)
	$(CARGO) run --release --quiet -p scimfleet-bench

.PHONY: bench-scale
bench-scale: services ## 100,000 people offboarded across 10 apps (1M deactivations), each part its own process
	$(CARGO) build --release --quiet --bin scimfleet -p scimfleet -p scimfleet-bench
	$(CARGO) run --release --quiet -p scimfleet-bench -- scale

.PHONY: lint
lint: ## cargo fmt --check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

.PHONY: doc
doc: ## Build the API docs of every crate with warnings (broken links included) as errors
	RUSTDOCFLAGS='-D warnings' $(CARGO) doc --no-deps --workspace

.PHONY: definitions
definitions: ## Regenerate deploy/rabbitmq/definitions.json from deploy/examples/scimfleet.toml
	$(CARGO) run --quiet --bin scimfleet -- topology definitions --config deploy/examples/scimfleet.toml > deploy/rabbitmq/definitions.json.tmp
	@mv deploy/rabbitmq/definitions.json.tmp deploy/rabbitmq/definitions.json

.PHONY: fmt
fmt: ## Format the code
	$(CARGO) fmt --all

.PHONY: schemas
schemas: ## Regenerate schemas/json/*.schema.json from the Rust types
	SCIMFLEET_UPDATE_SCHEMAS=1 $(CARGO) test --quiet -p scimfleet-schemas --test json_schemas
