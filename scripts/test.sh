#!/usr/bin/env bash
# The test command: installs what is missing, then runs formatting and lint checks, every
# Rust test (unit, kernel and end-to-end), the Python client tests and the packaging checks
# once they exist. Privileged tests need root; with TSIM_REQUIRE_PRIV_TESTS=1 (as in CI) a
# privileged test that cannot run fails instead of being skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh

step() { printf '\n== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
# The client library alone, as a web back end depends on it: no clap, no facts compiler.
cargo clippy -p tsim-client --no-default-features --all-targets --locked -- -D warnings

step "cargo doc"
RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps --locked --quiet

step "cargo test"
cargo build --workspace --bins --locked --quiet
# The tests must never change the namespace they run in: compare its links and routes.
root_before=$(ip -j link show; ip -j route show table all)
cargo test --workspace --locked
root_after=$(ip -j link show; ip -j route show table all)
if [ "$root_before" != "$root_after" ]; then
  echo "the tests changed the root namespace's links or routes:" >&2
  diff <(echo "$root_before" | tr '}' '\n') <(echo "$root_after" | tr '}' '\n') >&2 || true
  exit 1
fi

if [ -d client/python/tests ]; then
  step "Python client tests"
  scripts/python-tests.sh
fi

step "fuzzing (20 s per target)"
FUZZ_SECONDS=20 scripts/fuzz.sh

if [ -x packaging/check.sh ]; then
  step "packaging checks"
  packaging/check.sh
fi

step "leftover namespaces"
left=$(ip netns list | awk '{print $1}' | grep -E '^(tt[0-9a-f]+x[0-9]+-|tsimt-|tb[0-9a-f]+-)' || true)
if [ -n "$left" ]; then
  echo "test namespaces were left behind:" >&2
  echo "$left" >&2
  exit 1
fi
echo "none"
echo
echo "all checks passed"
