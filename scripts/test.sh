#!/usr/bin/env bash
# The project's test command (README, .ci/run): start the local services, then check
# formatting, lints, the generated CRD, and run every test against the real services.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/dev-services.sh up
eval "$(scripts/dev-services.sh env)"

echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== build (bins and tests, one feature set; tests run the binaries)" >&2
cargo build --workspace --all-targets --locked
echo "== tests" >&2
if ! command -v cargo-nextest >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi
# Outage tests stop a shared database, and the scale test loads every service: everything else
# first, then those alone.
cargo nextest run --workspace --locked --no-fail-fast -E 'not test(/^outage_/) and not test(/^scale::/)'
echo "== benchmark smoke (row counts only, no timing asserted)" >&2
target/debug/bench --messages 20000 --quick
cargo nextest run --workspace --locked --no-fail-fast -E 'test(/^outage_/) | test(/^scale::/)' --test-threads 1
