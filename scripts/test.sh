#!/usr/bin/env bash
# The whole test suite, cheap checks first. Installs what it needs (setup.sh).
# One cargo profile and feature set for clippy, tests and binaries: nothing
# compiles twice.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/setup.sh
setup_python
setup_zenohd

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy (all targets, -D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --all-targets --locked

step "wire contract from Python (cbor2 + eclipse-zenoh)"
.venv/bin/python tests/python/wire_client.py fixtures proto/tests/fixtures
scripts/python-contract.sh

printf '\nall tests passed\n'
