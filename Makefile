.DEFAULT_GOAL := help
VENV := .venv/bin

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup:  ## Create .venv and install the project with its dev tools
	@./scripts/setup.sh

demo: setup  ## Run the whole loop end to end on embedded parts (no Docker, no config)
	$(VENV)/fraud demo

test: setup  ## Lint, type-check and run every test (real broker, real Redis)
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/mypy
	$(VENV)/pytest

bench: setup  ## Feature-store and stream benchmarks (real Redis on loopback; JSON last line)
	$(VENV)/python bench/features.py --json
	$(VENV)/python bench/stream.py --json

lint:  ## ruff lint
	$(VENV)/ruff check .

format:  ## ruff format + autofix
	$(VENV)/ruff format .
	$(VENV)/ruff check --fix .

typecheck:  ## mypy --strict over every package
	$(VENV)/mypy

.PHONY: help setup demo test bench lint format typecheck
