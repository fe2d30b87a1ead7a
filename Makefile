# The two set-up commands of the README, plus the benchmark.
.PHONY: run test bench bootstrap

DATA_DIR ?= hall-data

bootstrap:
	scripts/bootstrap.sh

# Run the appliance on embedded defaults with generated sample scans flowing through it.
run: bootstrap
	.venv/bin/hall --data-dir $(DATA_DIR) init
	.venv/bin/hall --data-dir $(DATA_DIR) serve --demo 12

# Install everything and run the whole test suite (what CI runs).
test: bootstrap
	scripts/check.sh

bench: bootstrap
	.venv/bin/python benchmarks/run.py
