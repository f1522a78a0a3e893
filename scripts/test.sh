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
echo "== tests" >&2
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
