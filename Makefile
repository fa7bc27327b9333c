# hookpost — every entry point sets up what it needs on a fresh machine.
#   make run     venv + RabbitMQ + PostgreSQL + migrate + all services + a demo delivery
#   make test    the same preparation (and Node.js for tests/seeds_node), then lint and the whole
#                suite on the real servers
#   make install only the venv, with the `hookpost` script in .venv/bin/
#   make bench   the benchmarks (BENCHMARKS.md)
#   make chaos   hard faults under load on private RabbitMQ nodes (one, then a cluster of 3) + PostgreSQL
#   make chaos-long  PostgreSQL away past the poison window (RELIABILITY.md)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install infra tools migrate run test lint format bench chaos chaos-long clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@scripts/ensure-python.sh "$(PYTHON)" "$(VENV)"
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	@touch $(STAMP)

infra:
	@scripts/ensure-infra.sh

tools:
	@scripts/ensure-tools.sh

migrate: install infra
	$(BIN)/hookpost migrate

run: install infra
	$(BIN)/python -m scripts.run_demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install infra tools lint
	@scripts/ensure-node.sh
	@scripts/ensure-chromium.sh
	$(BIN)/pytest $(PYTEST_ARGS)

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install infra
	$(BIN)/python -m benchmarks.run

chaos: install infra
	nice -n 10 $(BIN)/python -m chaos.run --segment single --segment cluster

# PostgreSQL away for longer than the poison window (≈ 20 minutes): RELIABILITY.md
chaos-long: install infra
	nice -n 10 $(BIN)/python -m chaos.run --segment long

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hookpost *.egg-info
	rm -rf sdks/node/node_modules sdks/node/dist tests/seeds_node/receivers/node_modules \
		tests/seeds_node/receivers/.next tests/seeds_node/receivers/.build
