#!/usr/bin/env bash
# Everything CI checks, in order: lint, types, Rust checks and tests, stub check, the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYO3_PYTHON="$PWD/.venv/bin/python"

echo "== ruff";      .venv/bin/ruff check . && .venv/bin/ruff format --check .
echo "== mypy";      .venv/bin/mypy
echo "== cargo fmt"; cargo fmt --all --check
echo "== clippy";    cargo clippy --all-targets --all-features --quiet -- -D warnings
echo "== cargo test"; cargo test -p hall-native --quiet
echo "== stubtest";  .venv/bin/python -m mypy.stubtest appliance._native
echo "== ui unit tests"; node --test ui/tests/   # pure JS helpers (ID check digit, formats); the UI itself is tested in a real browser by pytest
echo "== pytest";    .venv/bin/python -m pytest "$@"
